"""File formats into Arrow: CSV (`csv/`), JSON and JSONL (`json/`), Parquet (`parquet`), with what
they share (`base`: opener, block size, header names; `compression`; `rejects`; `types`: the
`column_types` names; `microseconds`). `read.read_batches` is the entry point of the file
extractor (etl/extract/files.py).

Imports nothing here: `etl.config` imports the leaf `etl.formats.types`, and the readers import
`etl.config`, so this package's `__init__` must not import a reader.
"""
