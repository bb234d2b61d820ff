"""QC Workbench: an observatory's calibration and quality-control data flow."""

import os

__version__ = "0.1.0"

# OpenMP threads (numba's threading layer) sleep as soon as a parallel loop ends
# instead of spinning for the next: a recipe makes detectors on several threads at
# once, and spinning threads took the cores the others needed (the 32-CCD master
# bias: 13.3-13.9 s instead of 15.0-15.1 s, 2 s less CPU). Read when OpenMP starts,
# so set before any kernel runs; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
