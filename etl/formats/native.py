"""A file the destination reads itself: its columns as the Arrow path would yield them, how
each destination column is read from it, and its row count.

The file extractor yields a `NativeScan` instead of record batches when the loader says it can
read the format (`Loader.native_scans`, set on the extractor by `etl.pipeline.run`) and the
file qualifies (etl/formats/parquet.py `parquet_scan`): the DuckDB loader then runs one
`INSERT ... SELECT ... FROM read_parquet(...)`, parallel in DuckDB, with the renames, casts and
lineage columns in SQL. A leaf module: imports nothing from `etl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pyarrow as pa


@dataclass(frozen=True)
class NativeScan:
    """One local file for the destination to read in full.

    Attributes:
        reader: the format (`parquet`).
        key: the file's name in messages (its ledger key).
        path: the file's local path.
        columns: a batch of no rows with the columns the rows load into; before the transform
            the file's own columns plus `_etl_source_file`, after it the destination's.
        sources: column of `columns` -> the file's column it reads (a column not here is a
            constant of `constants`).
        constants: column of `columns` -> its value on every row (`_etl_source_file`).
        num_rows: rows in the file (its footer).
        nbytes: uncompressed bytes of the file's data (its footer); the progress figure.
        group_bytes: per row group, an upper bound of the bytes of its rows' values, from
            the file's footer (etl/formats/parquet.py); the destination sizes its buffers for
            the largest (etl/load/duckdb/memory.py).
    """

    reader: str
    key: str
    path: str
    columns: pa.RecordBatch
    sources: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    num_rows: int = 0
    nbytes: int = 0
    group_bytes: tuple[int, ...] = ()

    @property
    def schema(self) -> pa.Schema:
        return self.columns.schema

    def renamed(self, columns: pa.RecordBatch, names: dict[str, str]) -> NativeScan:
        """Return this scan loading into `columns` (the transform of `self.columns`), where
        `names` maps each column of `self.columns` read from the file to its new name."""
        back = {new: old for old, new in names.items()}
        sources, constants = {}, {}
        for name in columns.schema.names:
            old = back.get(name, name)
            if old in self.constants:
                constants[name] = self.constants[old]
            else:
                sources[name] = self.sources[old]
        return replace(self, columns=columns, sources=sources, constants=constants)
