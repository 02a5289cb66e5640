"""File extractor for `local`, `gcs`, `s3` and `azure_blob` sources (fsspec).

Transactional: the ledger in `SyncState.files` (path -> version and size) decides which objects
are new or changed; a changed object's earlier rows are replaced (rows carry
`_etl_source_file`). Catalog: every matching object, or the latest by last-modified, becomes the
new snapshot and the ledger is rebuilt from it.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Generator, Iterator
from typing import cast

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from etl.extract.base import Extraction, Extractor
from etl.extract.lines import record_line
from etl.extract.storage import StoredObject, list_objects
from etl.extract.storage_errors import storage_errors
from etl.formats.base import Opener
from etl.formats.compression import decompressing
from etl.formats.microseconds import TRUNCATED_WARNING, check_microseconds
from etl.formats.native import NativeScan
from etl.formats.parquet import parquet_scan
from etl.formats.read import read_batches
from etl.registry import register_extractor
from etl.schema import SOURCE_FILE_COLUMN
from etl.state import FileRecord, SyncState


@register_extractor("local", "gcs", "s3", "azure_blob")
class FileExtractor(Extractor):
    """Extract CSV / Parquet / JSON / JSONL objects matched by `file_prefix` + `file_pattern`."""

    def extract(self, state: SyncState) -> Extraction:
        fs, objects = list_objects(self.job)
        extraction = self._plan(fs, objects, state)
        if not objects:
            extraction.stats.warnings.append(
                f"no object matches file_prefix {self.job.file_prefix!r} and file_pattern "
                f"{self.job.file_pattern!r}"
            )
        return extraction

    def _plan(self, fs: object, objects: list[StoredObject], state: SyncState) -> FileExtraction:
        if self.job.load_type == "catalog":
            if self.job.file_format_options.catalog_files == "latest" and objects:
                objects = [max(objects, key=lambda obj: (obj.last_modified or "", obj.key))]
            return FileExtraction(self, fs, objects, replaced=[], skipped=0)
        todo, replaced, skipped = [], [], 0
        for obj in objects:
            known = state.files.get(obj.key)
            if known is not None and known.version == obj.version and known.size == obj.size:
                skipped += 1
                continue
            todo.append(obj)
            if known is not None:
                replaced.append(obj.key)
        return FileExtraction(self, fs, todo, replaced=replaced, skipped=skipped)


class FileExtraction(Extraction):
    """Reads the planned objects in key order; records rows per object for the ledger."""

    def __init__(
        self,
        extractor: FileExtractor,
        fs: fsspec.AbstractFileSystem,
        objects: list[StoredObject],
        *,
        replaced: list[str],
        skipped: int,
    ) -> None:
        super().__init__()
        self.job = extractor.job
        self.native_scans = extractor.native_scans
        self.fs = fs
        self.objects = objects
        self._replaced = replaced
        self.stats.files_skipped = skipped
        self.rows_by_key: dict[str, int] = {}

    @property
    def replaced_files(self) -> list[str]:
        return list(self._replaced)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the rows of the planned objects in key order: record batches, or one
        `NativeScan` per file the destination reads itself (`_native`).

        A file without rows (zero bytes, a header-only CSV, a zero-row Parquet / JSON / JSONL
        file) is recorded with 0 rows and a warning naming it. A catalog run whose files hold
        no row at all yields one batch of no rows with the columns the first such file
        declares, so the snapshot creates (or empties) the table with them; a transactional
        run creates no table from it (a CSV header carries no types: its columns would be text,
        and the typed values of a later file could not load into them).
        """
        job = self.job
        assert job.file_format is not None
        declared: pa.RecordBatch | None = None
        total = 0
        for obj in self.objects:
            self.current_file = obj.key
            truncated: dict[str, int] = {}
            scan = self._native(obj)
            if scan is not None:
                rows = scan.num_rows
                yield scan
            else:
                rows, empty = yield from self._read(obj, truncated)
                declared = empty if declared is None else declared
            self.rows_by_key[obj.key] = rows
            total += rows
            self.stats.files.append(obj.key)
            if rows == 0:
                self.stats.warnings.append(f"file {obj.key} has no rows ({obj.size} bytes)")
            for column, count in truncated.items():
                self.stats.warnings.append(
                    TRUNCATED_WARNING.format(file=obj.key, column=column, count=count)
                )
        if job.load_type == "catalog" and total == 0 and declared is not None:
            yield declared

    def _read(
        self, obj: StoredObject, truncated: dict[str, int]
    ) -> Generator[pa.RecordBatch, None, tuple[int, pa.RecordBatch | None]]:
        """Yield the rows of `obj` as record batches with `_etl_source_file`; return the rows
        read and the first batch of no rows (the columns the file declares), if any."""
        job = self.job
        assert job.file_format is not None
        rows, declared = 0, None
        with storage_errors(job, obj.url):
            opener: Opener = functools.partial(self.fs.open, obj.url, "rb")
            if job.file_format != "parquet":
                opener = decompressing(opener, obj.key)
            for batch in read_batches(
                job.file_format,
                opener,
                obj.key,
                job.file_format_options,
                job.chunk_size,
                self.rejects if job.on_bad_rows == "quarantine" else None,
                self.stats.warnings,
                native="parquet" in self.native_scans and job.load_type != "merge",
            ):
                if isinstance(batch, NativeScan):  # a CSV/JSON reader's spool, lineage included
                    rows += batch.num_rows
                    yield batch
                    continue
                batch = check_microseconds(batch, obj.key, rows, job.on_unrepresentable, truncated)
                batch = batch.append_column(
                    SOURCE_FILE_COLUMN, _constant_strings(obj.key, batch.num_rows)
                )
                if batch.num_rows == 0:
                    declared = batch if declared is None else declared
                    continue
                rows += batch.num_rows
                yield batch
        return rows, declared

    def _native(self, obj: StoredObject) -> NativeScan | None:
        """Return `obj` as a scan for the destination to read itself, when it reads the
        format (`native_scans`), the file is local and qualifies (`parquet_scan`), and the
        run is not a merge (whose key columns are checked for NULLs batch by batch)."""
        job = self.job
        if (
            job.file_format != "parquet"
            or "parquet" not in self.native_scans
            or job.source_type != "local"
            or job.load_type == "merge"
        ):
            return None
        with storage_errors(job, obj.url):
            return parquet_scan(obj.url, obj.key)

    def source_line(self, file: str, row: int) -> int | None:
        """The line where row `row` of `file` starts (etl/extract/lines.py), read again from
        the store; None for JSON arrays and Parquet, an unknown file, or a file that cannot
        be read again (this runs while another error is reported: it never raises)."""
        job = self.job
        obj = next((o for o in self.objects if o.key == file), None)
        if obj is None or job.file_format in (None, "parquet", "json"):
            return None
        skip = [cast(int, r["line"]) for r in self.rejects.rows if r["file"] == file and r["line"]]
        try:
            opener = decompressing(functools.partial(self.fs.open, obj.url, "rb"), obj.key)
            return record_line(job.file_format, opener, job.file_format_options, row, skip)
        except Exception:  # noqa: BLE001  the caller reports the row instead
            return None

    def next_state(self, state: SyncState, run_id: str) -> SyncState:
        ledger = {} if self.job.load_type == "catalog" else dict(state.files)
        for obj in self.objects:
            ledger[obj.key] = FileRecord(
                version=obj.version,
                size=obj.size,
                last_modified=obj.last_modified,
                rows=self.rows_by_key.get(obj.key, 0),
                run_id=run_id,
            )
        return state.model_copy(update={"files": ledger})


def _constant_strings(value: str, length: int) -> pa.Array:
    """Return a string array of `length` copies of `value`, built in Arrow: converting a Python
    list (or scalar) would cost a Python object per row and make pyarrow import pandas."""
    data = value.encode()
    single = pa.StringArray.from_buffers(
        1, pa.py_buffer(struct.pack("<ii", 0, len(data))), pa.py_buffer(data)
    )
    zeros = pa.Array.from_buffers(pa.int32(), length, [None, pa.py_buffer(bytes(4 * length))])
    return pc.take(single, zeros)
