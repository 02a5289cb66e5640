"""Transforms applied to every batch between extract and load.

Column selection (`selected_columns`), destination names (`transform.naming`), and type
normalisation to the Arrow types the loaders accept (shared/DESIGN.md §5).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from etl.config import JobConfig
from etl.exceptions import BadInputError, ConfigError
from etl.schema import SOURCE_FILE_COLUMN
from etl.transform.naming import assign_names, sanitize
from etl.transform.types import normalize_batch

__all__ = ["BatchTransformer", "assign_names", "sanitize"]


class BatchTransformer:
    """Select, rename and normalise batches; grows the column-name map as columns appear.

    Args:
        job: the job (`selected_columns`).
        column_map: the stored source -> destination name map; never changed for known names.
    """

    def __init__(self, job: JobConfig, column_map: Mapping[str, str]) -> None:
        self.job = job
        self.column_map = dict(column_map)

    def transform(self, batch: pa.RecordBatch, source: str = "") -> pa.RecordBatch:
        """Return `batch` with the selected columns, destination names and normalised types.

        A `NativeScan` (a file the destination reads itself) gets the same selection, names
        and types, applied to its columns, and the names the destination reads them by.

        Raises:
            ConfigError: a selected column is not in the source (lists the available ones).
            BadInputError: a value cannot be represented without loss (names the column).
        """
        from etl.formats.native import NativeScan

        if isinstance(batch, NativeScan):
            return batch.renamed(self.transform(batch.columns, source), self.column_map)
        names = batch.schema.names
        # only the engine's own column passes through; a source column named `_etl_*` (e.g.
        # a table loaded by ETL Runner, read back) is renamed like any other
        metadata = [name for name in names if name == SOURCE_FILE_COLUMN]
        if self.job.selected_columns:
            missing = [name for name in self.job.selected_columns if name not in names]
            if missing:
                available = ", ".join(n for n in names if n not in metadata)
                raise ConfigError(
                    f"selected_columns {missing} not found in {source or 'the source'}; "
                    f"available: {available}",
                    field="selected_columns",
                )
            keep = list(self.job.selected_columns) + metadata
            batch = batch.select(keep)
        data_names = [name for name in batch.schema.names if name not in metadata]
        self.column_map = assign_names(data_names, self.column_map, reserved=metadata)
        renamed = [
            name if name in metadata else self.column_map[name] for name in batch.schema.names
        ]
        batch = batch.rename_columns(renamed)
        try:
            return normalize_batch(batch)
        except BadInputError as exc:
            if exc.file is None and source:
                raise BadInputError(exc.reason, file=source, column=exc.column) from exc
            raise
