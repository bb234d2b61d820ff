"""QC parameters: the catalogue's generic measurements (and, in issue D, scoring)."""
