"""QC Workbench: an observatory's calibration and quality-control data flow."""

__version__ = "0.1.0"
