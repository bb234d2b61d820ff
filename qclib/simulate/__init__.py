"""Realistic raw nights per instrument, with recorded truth (``truth.json``)."""
