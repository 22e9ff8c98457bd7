"""The runner: the training loop (``loop``), checkpoints (``checkpoint``), run directories
(``runs``) and the loss-curve figure (``plots``).
Nothing in the library (``data``, ``models``, ``losses``, ``retrieval``) imports it."""
