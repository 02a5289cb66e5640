"""The BigQuery destination, one module per job:

- `loader`: `BigQueryLoader` (registered as "bigquery"): the batches staged in Parquet parts.
- `jobs`: the API calls every part builds on: client, query and load jobs, table lookup.
- `loadlog`: the dataset's load log, its newest entries, the fence statement, the log entry.
- `commit`: the fenced commit transaction (append, merge), the catalog swap, the rejects.
- `merge`: each key's latest row (the MERGE; a merge's full refresh).
- `evolve`: table creation with its options, schema evolution.
- `staging`: the Parquet parts sent in load jobs and the value checks made before them.
- `tables`: table options (partitioning, clustering, labels, descriptions).
- `types`: Arrow -> BigQuery types.
- `errors`: load-job errors translated to file, line and column.
- `sql`: GoogleSQL literals and DDL types.

This package's `__init__` imports nothing, so `etl.load.bigquery.types` can be used without
loading google-cloud-bigquery (etl/registry.py imports `etl.load.bigquery.loader`).
"""
