"""Read a run's first rejected rows back from `<table>__rejected` (DuckDB or BigQuery), for the
run page. Nothing is written."""

from __future__ import annotations

from typing import Any

import etl
from ml_platform.models import EtlRun
from ml_platform.services.job_config import job_config_build
from ml_platform.services.secrets import redact, secret_strings

REJECTED_COLUMNS = ("file", "line", "column", "reason", "record")
REJECTED_UNREADABLE = "The rejected rows could not be read: {error}"


def rejected_rows_read(*, run: EtlRun, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Return `(rows, error)`: up to `limit` rows `{"file", "line", "column", "reason",
    "record"}` that `run` set aside (by `_etl_run_id`), ordered by file and line; `error` says
    why none could be read (file locked by a running load, table dropped, ...)."""
    secrets: list[str] = []
    try:
        job = job_config_build(data_source=run.data_source)
        destination = job.destination
        secrets = list(secret_strings(destination.credentials))
        table = f"{job.dest_table_name}__rejected"
        columns = ", ".join(f"`{c}`" if destination.type == "bigquery" else f'"{c}"'
                            for c in REJECTED_COLUMNS)  # fmt: skip
        if destination.type == "duckdb":
            import duckdb

            with duckdb.connect(destination.path, read_only=True) as conn:
                result = conn.execute(
                    f'SELECT {columns} FROM "{destination.dataset}"."{table}" '
                    'WHERE "_etl_run_id" = ? ORDER BY "file", "line" LIMIT ?',
                    [run.uid.hex, limit],
                )
                return [
                    dict(zip(REJECTED_COLUMNS, row, strict=True)) for row in result.fetchall()
                ], None
        from google.cloud import bigquery

        client = etl.make_bigquery_client(
            project=destination.project or "",
            credentials=destination.credentials,
            api_endpoint=destination.api_endpoint,
            location=destination.location,
        )
        query = (
            f"SELECT {columns} FROM `{destination.project}.{destination.dataset}.{table}` "
            "WHERE _etl_run_id = @run ORDER BY file, line LIMIT @limit"
        )
        params = [
            bigquery.ScalarQueryParameter("run", "STRING", run.uid.hex),
            bigquery.ScalarQueryParameter("limit", "INT64", limit),
        ]
        rows = client.query(
            query, job_config=bigquery.QueryJobConfig(query_parameters=params), timeout=30
        ).result(timeout=30)
        return [dict(zip(REJECTED_COLUMNS, row.values(), strict=True)) for row in rows], None
    except (etl.EtlError, Exception) as exc:  # noqa: BLE001  shown on the page, never a 500
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
        return [], REJECTED_UNREADABLE.format(error=redact(text, secrets))
