"""QC parameters, pure: ``measures`` (the generic measurements an instrument TOML can
name), ``scoring`` (grading OK / NOK / UNSCORED against versioned rules, rolled up to
detector, product, block, night and instrument) and ``review`` (which products a QC
scientist reviews, and why)."""
