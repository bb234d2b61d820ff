"""Installs the kill point named by ``QC_KILLPOINT`` in every Python process started
with this folder on ``PYTHONPATH`` (``tests.killpoints``); does nothing otherwise."""

import os

if os.environ.get("QC_KILLPOINT"):
    from tests.killpoints import POINT_ENV, install

    install(os.environ[POINT_ENV])
