"""ESO's own pipelines (esorex and its recipe plugins) as installed on this machine.

``pipelines``: where an installed pipeline keeps its recipes, its OCA rule file and its
QC1 dictionary, which recipes it installs, and which actions of its rule file can run.
Nothing here copies ESO's files: they are read where the package put them.
"""
