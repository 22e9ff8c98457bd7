"""Data sources that are not the data layer: the built-in dataset generator (``synth``) and the
PKU FG-XMedia preparation tool (``fgxmedia_prepare``)."""
