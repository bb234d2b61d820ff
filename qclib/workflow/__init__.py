"""The I/O side of the flow: the steps that read and write the workspace and database.

- ``ingest``: validate raw files, store them read-only or quarantine them with a reason;
- ``association``: classify the indexed frames and store the association blocks;
- ``calchecker``: calibration status of recent science, judged on the frames indexed now;
- ``process``: run complete blocks' recipes parents-first, on an ``executors`` executor
  (serial, local process pool, Dask), products and QC values in one transaction;
- ``extinction``: a night's extinction fit once it holds enough standard-field visits;
- ``scoring``: grade new QC values with the rule valid on each product's night;
- ``reports``: execute report notebooks with papermill and export them to HTML;
- ``run``: one idempotent pass of all of these (``qc run``), and ``watch`` for passes
  on a schedule and on new files.
"""
