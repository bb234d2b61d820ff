"""Reference pipelines QC Workbench is compared with (ESO's esorex)."""
