"""BigQuery source: a table (`dataset.table` or `project.dataset.table`) or custom SQL, full or
incremental by a cursor column through a parameterised query; results stream as Arrow pages.

The upper bound is the cursor's maximum read just before the window query; rows committed later
with a cursor at or below it are caught on the next run only within `cursor_lag_seconds` (as
for rows committed late in any source).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa

from etl.bigquery_client import bigquery, make_client, translate
from etl.exceptions import EtlError, NullCursorError
from etl.extract.base import Extraction, Extractor
from etl.extract.incremental import CursorWindow
from etl.registry import register_extractor
from etl.state import SyncState


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _parameter(name: str, value: Any) -> Any:
    """Return a typed query parameter for a cursor bound."""
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMP" if value.tzinfo else "DATETIME"
    elif isinstance(value, dt.date):
        kind = "DATE"
    elif isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, Decimal):
        digits = len(value.as_tuple().digits)
        kind = "NUMERIC" if -value.as_tuple().exponent <= 9 and digits <= 38 else "BIGNUMERIC"
    elif isinstance(value, float):
        kind = "FLOAT64"
    else:
        kind = "STRING"
    return bigquery.ScalarQueryParameter(name, kind, value)


@register_extractor("bigquery")
class BigQueryExtractor(Extractor):
    """Extract from BigQuery (`connection_params`: project, credentials, api_endpoint, location)."""

    def relation(self) -> str:
        if self.job.custom_sql:
            return f"({self.job.custom_sql.strip().rstrip(';')}) AS _etl_src"
        assert self.job.source_table_name is not None
        parts = self.job.source_table_name.split(".")
        if len(parts) == 2:
            parts.insert(0, self.job.connection_params["project"])
        return _quote(".".join(parts))

    def columns(self) -> str:
        return ", ".join(_quote(name) for name in self.job.source_columns) or "*"

    def extract(self, state: SyncState) -> Extraction:
        p = self.job.connection_params
        client = make_client(
            project=p["project"],
            credentials=p.get("credentials"),
            api_endpoint=p.get("api_endpoint"),
            location=p.get("location"),
            field="connection_params.credentials",
        )
        select = f"SELECT {self.columns()} FROM {self.relation()}"
        try:
            if self.job.load_type == "catalog":
                return BigQueryExtraction(self, client, select, [], window=None)
            return self._incremental(client, select, state)
        except EtlError:
            raise
        except Exception as exc:  # noqa: BLE001  every API error is translated
            raise translate(exc, self.job.source_table_name or "custom_sql", source=True) from exc

    def _incremental(self, client: Any, select: str, state: SyncState) -> Extraction:
        job = self.job
        assert job.timestamp_column is not None
        cursor = _quote(job.timestamp_column)
        probe = client.query(
            f"SELECT MAX({cursor}) AS upper, COUNTIF({cursor} IS NULL) AS nulls FROM {self.relation()}",
            job_config=bigquery.QueryJobConfig(labels=dict(self.job_labels)),
        ).result()
        row = next(iter(probe))
        upper, null_count = row["upper"], int(row["nulls"] or 0)
        if null_count and job.null_cursor == "fail":
            raise NullCursorError(
                job.source_table_name or "custom_sql", job.timestamp_column, null_count
            )
        lower = (
            state.watermark.minus(job.cursor_lag_seconds) if state.watermark else job.initial_value
        )
        params: list[Any] = []
        if upper is None:
            where = "FALSE"
        else:
            where = f"{cursor} <= @upper"
            params.append(_parameter("upper", upper))
            if lower is not None:
                where = f"{cursor} >= @lower AND {where}"
                params.append(_parameter("lower", lower))
        if job.null_cursor == "include" and null_count:
            where = f"({where}) OR {cursor} IS NULL"
        window = CursorWindow(
            state=state,
            cursor_column=job.timestamp_column,
            key_columns=job.window_key_columns,
            version_columns=job.primary_key if job.load_type == "merge" else (),
            lag=job.cursor_lag_seconds,
            upper=upper,
            null_policy=job.null_cursor,
        )
        return BigQueryExtraction(self, client, f"{select} WHERE {where}", params, window=window)


class BigQueryExtraction(Extraction):
    """Runs the query and yields its result pages as batches of at most `chunk_size` rows."""

    def __init__(
        self,
        extractor: BigQueryExtractor,
        client: Any,
        sql: str,
        params: list[Any],
        *,
        window: CursorWindow | None,
    ) -> None:
        super().__init__()
        self.extractor, self.client, self.sql, self.params = extractor, client, sql, params
        self.window = window

    def batches(self) -> Iterator[pa.RecordBatch]:
        job = self.extractor.job
        try:
            query = self.client.query(
                self.sql,
                job_config=bigquery.QueryJobConfig(
                    query_parameters=self.params, labels=dict(self.extractor.job_labels)
                ),
            )
            rows = query.result(page_size=job.chunk_size)
            for batch in rows.to_arrow_iterable():
                if self.window is not None:
                    batch = self.window.filter(batch)
                for offset in range(0, batch.num_rows, job.chunk_size):
                    yield batch.slice(offset, job.chunk_size)
        except EtlError:
            raise
        except Exception as exc:  # noqa: BLE001  every API error is translated
            raise translate(exc, job.source_table_name or "custom_sql", source=True) from exc
        if self.window is not None:
            self.stats.rows_skipped = self.window.rows_skipped

    def next_state(self, state: SyncState, run_id: str) -> SyncState:
        return self.window.next_state(state) if self.window is not None else state

    def close(self) -> None:
        self.client.close()
