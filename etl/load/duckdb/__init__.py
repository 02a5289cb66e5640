"""The DuckDB destination (the embedded default), one module per job:

- `loader`: `DuckDbLoader` (registered as "duckdb"): the one transaction per run.
- `insert`: SQL projection of batches, exact text, progress while DuckDB reads a stream.
- `types`: the type changes a table may take without losing a value (`widened`).
"""

from etl.load.duckdb.loader import DuckDbLoader
from etl.load.duckdb.types import widened

__all__ = ["DuckDbLoader", "widened"]
