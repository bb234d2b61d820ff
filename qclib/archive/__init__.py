"""Review, certification, the audit log, the archive and CalSelector trees.

- ``review``: the queue of products a QC scientist looks at (NOK, drawn, tainted).
- ``certification``: certify / reject (with the comment each needs), the automatic
  certifier, and what a rejection does downstream (taint and reprocess).
- ``audit``: the append-only, hash-chained log of every decision, and its check.
- ``store``: certified products ingested into ``data/archive/`` under ESO-style names,
  verified on write and on read; superseded masters stay, marked.
- ``calselector``: the calibrations a raw science frame needs, as ESO's CalSelector
  association tree (XML) or JSON.
"""
