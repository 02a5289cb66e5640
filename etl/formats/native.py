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
import pyarrow.compute as pc


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
        group_bytes: per row group, an upper bound of the bytes of its rows' values (the
            destination sizes its buffers for the largest): the exact largest row of a spool
            the reader wrote (`row_bytes`), else from the footer (etl/formats/parquet.py).
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


def row_bytes(batch: pa.RecordBatch) -> int:
    """Return an upper bound of the bytes of `batch`'s largest row: the sum, over its columns,
    of the column's largest text or binary value (Arrow's `binary_length`), of all its buffers
    for a nested or view column (no value is larger), or of its fixed width."""
    total = 0
    for column in batch.columns:
        data_type = column.type
        if pa.types.is_dictionary(data_type):
            column, data_type = column.dictionary, data_type.value_type
        if (
            pa.types.is_string(data_type)
            or pa.types.is_large_string(data_type)
            or pa.types.is_binary(data_type)
            or pa.types.is_large_binary(data_type)
        ):
            total += pc.max(pc.binary_length(column)).as_py() or 0
            continue
        try:
            total += -(-data_type.bit_width // 8)
        except ValueError:  # not of fixed width (nested, views): all the column's buffers
            total += column.nbytes
    return total
