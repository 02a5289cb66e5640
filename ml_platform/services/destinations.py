"""Reads of a data source's destination for the wizard: "Test destination". Nothing is
written (a DuckDB file is not created, a BigQuery dataset is only looked up)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import structlog

import etl
from ml_platform.models import DataSource
from ml_platform.services.job_config import job_config_data
from ml_platform.services.secrets import redact, secret_strings

logger = structlog.get_logger(__name__)

DUCKDB_DIR_MISSING = "Folder {folder} does not exist."
DUCKDB_DIR_READ_ONLY = "Folder {folder} is not writable by this server."
DUCKDB_NOT_A_FILE = "{path} exists and is not a file."
DUCKDB_OK = "DuckDB file {path} {state}; dataset {dataset}."
BIGQUERY_OK = "BigQuery project {project} answered; dataset {dataset} {state}."


def destination_test(*, data_source: DataSource) -> dict[str, Any]:
    """Check that `data_source`'s destination can be reached, without writing.

    DuckDB: the file's folder exists and is writable (the file may not exist yet). BigQuery:
    a client with the destination's credentials and endpoint looks the dataset up.

    Returns:
        `{"ok": bool, "message": str, "duration_ms": int}`; a failure is a result with its
        reason (secrets replaced by `***`), not an exception.
    """
    started = time.perf_counter()
    secrets: list[str] = []
    try:
        data = job_config_data(data_source=data_source)
        destination = data["destination"]
        secrets = list(secret_strings(destination.get("credentials")))
        config = etl.DestinationConfig(**destination)
        ok, message = _duckdb_test(config) if config.type == "duckdb" else _bigquery_test(config)
    except Exception as exc:  # noqa: BLE001  a failed probe is the answer, not an error
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:500]
        ok, message = False, redact(f"{type(exc).__name__}: {text}", secrets)
    duration_ms = round((time.perf_counter() - started) * 1000)
    logger.info("destination.tested", data_source_id=data_source.pk, ok=ok, duration_ms=duration_ms)
    return {"ok": ok, "message": message, "duration_ms": duration_ms}


def _duckdb_test(config: etl.DestinationConfig) -> tuple[bool, str]:
    path = Path(config.path)
    folder = path.parent
    if not folder.is_dir():
        return False, DUCKDB_DIR_MISSING.format(folder=folder)
    if not os.access(folder, os.W_OK):
        return False, DUCKDB_DIR_READ_ONLY.format(folder=folder)
    if path.exists() and not path.is_file():
        return False, DUCKDB_NOT_A_FILE.format(path=path)
    state = "exists" if path.exists() else "will be created by the first run"
    return True, DUCKDB_OK.format(path=path, state=state, dataset=config.dataset)


def _bigquery_test(config: etl.DestinationConfig) -> tuple[bool, str]:
    from google.api_core import exceptions as api_exceptions

    client = etl.make_bigquery_client(
        project=config.project or "",
        credentials=config.credentials,
        api_endpoint=config.api_endpoint,
        location=config.location,
    )
    try:
        client.get_dataset(f"{config.project}.{config.dataset}", timeout=30)
        state = "exists"
    except api_exceptions.NotFound:
        list(client.list_datasets(max_results=1, timeout=30))
        state = "will be created by the first run"
    return True, BIGQUERY_OK.format(project=config.project, dataset=config.dataset, state=state)


LOADER_COLUMNS = (("_etl_run_id", "STRING"), ("_etl_loaded_at", "TIMESTAMP"))
"""Columns the loader adds to every row (`etl.load.base.RUN_ID_COLUMN`, `LOADED_AT_COLUMN`);
docs/config.md: they may partition the table."""


def data_source_destination_columns_check(*, data_source: DataSource) -> None:
    """Check `data_source`'s BigQuery partitioning and clustering columns against the columns a
    run would load, read now by a one-row preview, with the engine's rule
    (`etl.check_bigquery_columns`, the one the wizard's step 4 and the loader use), when there
    are some to check and the source can be read; otherwise (no such option, the source
    unreadable or empty) the run reports the same typed error.

    Raises:
        etl.ConfigError: `field` `destination.partitioning.field` or `destination.clustering`,
            naming the column and why (not a column of the table, or a type BigQuery refuses).
    """
    from ml_platform.services.preview import data_source_preview

    job = etl.JobConfig.parse(job_config_data(data_source=data_source))
    destination = job.destination
    partitioned = destination.partitioning is not None and bool(destination.partitioning.field)
    if destination.type != "bigquery" or not (partitioned or destination.clustering):
        return
    try:
        preview = data_source_preview(data_source=data_source, limit=1)
    except Exception as exc:  # noqa: BLE001  unknown columns: the run checks them
        logger.info(
            "destination.columns_unknown",
            data_source_id=data_source.pk,
            error_class=type(exc).__name__,
        )
        return
    if preview["columns"]:
        columns = [(c["name"], c["bigquery_type"]) for c in preview["columns"]]
        known = {name for name, _ in columns}
        columns += [column for column in LOADER_COLUMNS if column[0] not in known]
        etl.check_bigquery_columns(destination, columns)
