"""`on_bad_rows: quarantine` for CSV (pass 2 of etl/formats/csv/reader.py): the rows with the
wrong number of fields and the values that do not convert to their `column_types` type go to
`Rejects`, located by a diagnostic re-read (etl/formats/csv/diagnose.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from etl.config import FileFormatOptions
from etl.formats.base import Opener
from etl.formats.csv.diagnose import locate_rejects
from etl.formats.rejects import Rejects


def quarantined(
    batches: Iterator[pa.RecordBatch],
    skipped: list[str],
    opener: Opener,
    key: str,
    options: FileFormatOptions,
    types: dict[str, pa.DataType],
    overrides: dict[str, pa.DataType],
    rejects: Rejects,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of `batches` (pass 2, `overrides` columns read as text) with every
    column in `types`; put the ragged rows (`skipped` fills as Arrow's reader skips them) and
    the rows with a value not of its `column_types` type into `rejects`."""
    bad_values: list[tuple[int, str, str]] = []  # (good-row index, column, reason)
    first = 0
    for batch in batches:
        keep = _bad_values(batch, first, overrides, options, bad_values)
        first += batch.num_rows
        if keep is not None:
            batch = batch.filter(pa.array(keep))
        yield pa.RecordBatch.from_arrays(
            [
                col.cast(types[name]) if name in overrides else col
                for name, col in zip(batch.schema.names, batch.columns, strict=True)
            ],
            names=batch.schema.names,
        )
    if skipped or bad_values:
        locate_rejects(opener, key, options, len(types), bad_values, rejects)


def _bad_values(
    batch: pa.RecordBatch,
    first: int,
    overrides: dict[str, pa.DataType],
    options: FileFormatOptions,
    bad_values: list[tuple[int, str, str]],
) -> list[bool] | None:
    """Add to `bad_values` the values of `batch` (rows `first`... of the good rows) that do not
    convert to their `column_types` type; return which rows to keep (None: all)."""
    keep = None
    for name, target in overrides.items():
        column = batch.column(name)
        try:
            pc.cast(column, target, safe=True)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        for index, value in enumerate(column.to_pylist()):
            if value is None or (keep is not None and not keep[index]):
                continue
            try:
                pa.array([value]).cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                keep = keep or [True] * batch.num_rows
                keep[index] = False
                reason = f"value {value!r} is not a valid {options.column_types[name]}"
                bad_values.append((first + index, name, reason))
    return keep
