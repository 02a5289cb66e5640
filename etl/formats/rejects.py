"""Rows set aside under `on_bad_rows: quarantine` (CSV rows, JSONL lines, `json` array elements
that do not parse or convert), with the file, line, column and reason; the loaders write them to
`<table>__rejected`. A leaf of the file readers: imports nothing from `etl` but the exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from etl.exceptions import BadInputError

MAX_REJECTED_ROWS = 100_000
"""Rows one run may set aside under `on_bad_rows: quarantine` (they are held until the commit);
more fails the run: the file is then not a file with some bad rows but the wrong format."""

REJECTED_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("line", pa.int64()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("record", pa.string()),
    ]
)
"""Columns of `<table>__rejected` (before `_etl_run_id` / `_etl_loaded_at`)."""


@dataclass
class Rejects:
    """Rows set aside under `on_bad_rows: quarantine`: where they are and why."""

    rows: list[dict[str, object]] = field(default_factory=list)

    def add(
        self, file: str, line: int | None, column: str | None, reason: str, record: str
    ) -> None:
        """Record one rejected row.

        Raises:
            BadInputError: more than MAX_REJECTED_ROWS rows were rejected in this run.
        """
        if len(self.rows) >= MAX_REJECTED_ROWS:
            raise BadInputError(
                f"more than {MAX_REJECTED_ROWS} rows rejected; check file_format and "
                "file_format_options",
                file=file,
                line=line,
                column=column,
            )
        self.rows.append(
            {"file": file, "line": line, "column": column, "reason": reason, "record": record}
        )

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=REJECTED_SCHEMA)
