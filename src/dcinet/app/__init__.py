"""The applications on top of the library and the runner: the ``dcinet`` command (``cli``), the
search server (``serve``), the demo (``demo``) and the ablation grids (``ablate``)."""
