"""Data-quality bits of product DQ extensions."""

DQ_HOT = 1
DQ_COLD = 2
DQ_NO_DATA = 4
DQ_SATURATED = 8
