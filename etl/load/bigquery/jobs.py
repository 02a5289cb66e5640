"""The BigQuery loader's API calls: the client, retried calls with translated errors, query
jobs (found again by a fixed id), table lookup and the load job of one staged Parquet part.

`BigQueryJobs` is the base every part of `BigQueryLoader` builds on (load log, tables, merge,
commit: one module each).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from etl.bigquery_client import (
    api_exceptions,
    bigquery,
    make_client,
    rate_limit_retry,
    retry,
    translate,
)
from etl.config import DestinationConfig
from etl.exceptions import DestinationError, EtlError
from etl.load.base import Loader
from etl.load.bigquery.errors import load_error


def run_tag(run_id: str) -> str:
    """Return the part of a run's staging table names and job ids that names the run."""
    return run_id.replace("-", "")[:32]


class BigQueryJobs(Loader):
    """Calls to BigQuery in `destination.project` with the run's labels and the destination's
    timeout (`destination.timeout_s`, seconds); every API error becomes an `EtlError`."""

    def __init__(self, destination: DestinationConfig) -> None:
        super().__init__(destination)
        self._client: bigquery.Client | None = None

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            d = self.destination
            self._client = make_client(
                project=d.project or "",  # required of a bigquery destination (DestinationConfig)
                credentials=d.credentials,
                api_endpoint=d.api_endpoint,
                location=d.location,
            )
        return self._client

    def table_id(self, table: str) -> str:
        return f"{self.destination.project}.{self.destination.dataset}.{table}"

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, retry=retry(self.destination.timeout_s), **kwargs)
        except EtlError:
            raise
        except Exception as exc:  # noqa: BLE001  every API error is translated
            raise translate(exc, what) from exc

    def _wait(self, job: Any, what: str) -> Any:
        try:
            return job.result(timeout=self.destination.timeout_s)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from exc

    def _query(
        self, sql: str, params: list[Any], job_id: str | None = None, what: str = "query"
    ) -> Any:
        config = bigquery.QueryJobConfig(query_parameters=params, labels=dict(self.job_labels))
        if job_id is not None:
            existing = self._existing_job(job_id)
            if existing is not None:
                return self._wait(existing, what)
        # a fixed job id cannot be retried under the same id: no job_retry then
        extra = {"job_retry": None} if job_id is not None else {}
        job = self._call(what, self.client.query, sql, job_config=config, job_id=job_id, **extra)
        return self._wait(job, what)

    def _existing_job(self, job_id: str) -> Any:
        try:
            job = self.client.get_job(job_id, retry=retry(self.destination.timeout_s))
        except api_exceptions.NotFound:
            return None
        except Exception:  # noqa: BLE001  an emulator may not list jobs; submit instead
            return None
        return job if getattr(job, "error_result", None) is None else None

    def _table_or_none(self, table_id: str) -> Any:
        try:
            return self.client.get_table(table_id, retry=retry(self.destination.timeout_s))
        except api_exceptions.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, table_id) from exc

    def _load_part(
        self,
        staging: str,
        path: Path,
        number: int,
        tag: str,
        table: str,
        sources: Any = None,
        source_line: Any = None,
    ) -> None:
        """Load one staged Parquet part; `sources` (the `PartWriter`) maps a failed job's
        rows back to their source file and row, `source_line` (`LoadRequest.source_line`)
        a file's row to its line (etl/load/bigquery/errors.py)."""
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            schema=self._call("table lookup", self.client.get_table, staging).schema,
            labels=dict(self.job_labels),
        )
        config.parquet_options = bigquery.ParquetOptions()
        config.parquet_options.enable_list_inference = True
        jobs: list[Any] = []

        def attempt() -> Any:  # a new job id each time: a failed job's id cannot be reused
            job_id = f"etl_{tag}_part{number:05d}_{uuid.uuid4().hex[:8]}"
            with open(path, "rb") as handle:
                job = self.client.load_table_from_file(
                    handle,
                    staging,
                    job_config=config,
                    job_id=job_id,
                    rewind=True,
                    timeout=self.destination.timeout_s,
                )
            jobs.append(job)
            return job.result(timeout=self.destination.timeout_s)

        try:  # rateLimitExceeded / short-window quotaExceeded: backoff with jitter, new job
            rate_limit_retry(self.destination.timeout_s)(attempt)()
        except Exception as exc:  # noqa: BLE001  every API error is translated
            job = jobs[-1] if jobs else None
            job_id = job.job_id if job is not None else "not submitted"
            error = translate(exc, f"the load of {table} (job {job_id}, {path.name})")
            if job is None or type(error) is not DestinationError:
                raise error from exc
            raise load_error(
                table=table,
                job_id=job_id,
                errors=job.errors or getattr(exc, "errors", None) or [],
                part=path,
                files_before=sources.files_loaded if sources is not None else None,
                rows_before=sources.rows_loaded if sources is not None else 0,
                source_line=source_line,
            ) from exc
