"""Sync state between the engine's `etl.SyncState` and the `DataSourceState` / `ProcessedFile` rows."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import transaction

import etl
from ml_platform.models import DataSource, DataSourceState, EtlRun, ProcessedFile


def sync_state_get_engine(*, data_source: DataSource) -> etl.SyncState:
    """Return the engine state of `data_source`: its `DataSourceState` row (watermark, boundary and
    NULL-cursor keys and how they were computed, column map, last run id) plus its
    `ProcessedFile` rows as the file ledger. An empty state when the source never ran."""
    row = DataSourceState.objects.filter(data_source=data_source).first()
    files = {
        record.path: etl.FileRecord(
            version=record.version,
            size=record.size,
            last_modified=record.last_modified.isoformat() if record.last_modified else None,
            rows=record.rows,
            run_id=record.engine_run_id,
        )
        for record in ProcessedFile.objects.filter(data_source=data_source)
    }
    if row is None:
        return etl.SyncState(files=files)
    watermark = None
    if row.watermark_value and row.watermark_type:
        watermark = etl.Watermark(value=row.watermark_value, type=row.watermark_type)
    return etl.SyncState(
        last_run_id=row.last_run_id or None,
        watermark=watermark,
        boundary_keys=list(row.boundary_keys),
        null_keys=list(row.null_keys),
        boundary=etl.BoundarySpec.model_validate(row.boundary) if row.boundary else None,
        column_map=dict(row.column_map),
        files=files,
    )


@transaction.atomic
def sync_state_save(
    *, data_source: DataSource, state: etl.SyncState, run: EtlRun
) -> DataSourceState:
    """Store `state` as the source's `DataSourceState` row and make its `ProcessedFile` rows mirror
    `state.files` (new paths created, changed ones updated, vanished ones deleted).

    Called by `etl_run_execute` inside the transaction that also finishes the run.
    """
    row = DataSourceState.objects.filter(data_source=data_source).first() or DataSourceState(
        data_source=data_source
    )
    row.watermark_value = state.watermark.value if state.watermark else ""
    row.watermark_type = state.watermark.type if state.watermark else ""
    row.boundary_keys = list(state.boundary_keys)
    row.null_keys = list(state.null_keys)
    row.boundary = state.boundary.model_dump(mode="json") if state.boundary else None
    row.column_map = dict(state.column_map)
    row.last_run_id = state.last_run_id or ""
    row.full_refresh_pending = False
    row.full_clean()
    row.save()
    _processed_files_sync(data_source=data_source, state=state, run=run)
    return row


def _processed_files_sync(*, data_source: DataSource, state: etl.SyncState, run: EtlRun) -> None:
    existing = {
        record.path: record for record in ProcessedFile.objects.filter(data_source=data_source)
    }
    vanished = set(existing) - set(state.files)
    if vanished:
        ProcessedFile.objects.filter(data_source=data_source, path__in=vanished).delete()
    runs = {run.uid.hex: run}
    for path, record in state.files.items():
        row = existing.get(path)
        if row is not None and (row.version, row.size, row.rows, row.engine_run_id) == (
            record.version,
            record.size,
            record.rows,
            record.run_id,
        ):
            continue
        if row is None:
            row = ProcessedFile(data_source=data_source, path=path)
            row.status = ProcessedFile.Status.LOADED
        elif row.version != record.version or row.size != record.size:
            row.status = ProcessedFile.Status.RELOADED
        row.version, row.size, row.rows = record.version, record.size, record.rows
        row.last_modified = (
            dt.datetime.fromisoformat(record.last_modified) if record.last_modified else None
        )
        row.engine_run_id = record.run_id
        if record.run_id not in runs:
            runs[record.run_id] = EtlRun.objects.filter(uid=_uuid_or_none(record.run_id)).first()
        row.run = runs[record.run_id]
        # (data_source, path) is unique by construction: rows were looked up by it above
        row.full_clean(validate_constraints=False)
        row.save()


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def sync_state_full_refresh_pending(*, data_source: DataSource) -> bool:
    """Whether the next run replaces the destination table (the state was reset)."""
    return DataSourceState.objects.filter(
        data_source=data_source, full_refresh_pending=True
    ).exists()


DATA_SOURCE_RESET_BUSY = "Data source {name} has run {run_id} {status}; reset it when it ends."


@transaction.atomic
def sync_state_reset(*, data_source: DataSource) -> DataSourceState:
    """Forget what `data_source` loaded: the watermark, tie and NULL-cursor keys and the file
    ledger (`ProcessedFile` rows) are cleared, so its next run reads everything again and
    replaces the destination table (a full reload, no duplicates).

    The column-name map (names stay stable) and the last run id (so the destination's load
    log is not mistaken for an unfinished run and adopted back) are kept.

    Raises:
        ApplicationError: a run of the source is queued or running.
    """
    from ml_platform.exceptions import ApplicationError

    active = data_source.runs.filter(status__in=EtlRun.ACTIVE_STATUSES).first()
    if active is not None:
        raise ApplicationError(
            DATA_SOURCE_RESET_BUSY.format(
                name=data_source.name, run_id=active.id, status=active.status
            )
        )
    row = DataSourceState.objects.select_for_update().filter(data_source=data_source).first()
    row = row or DataSourceState(data_source=data_source)
    row.watermark_value = row.watermark_type = ""
    row.boundary_keys, row.null_keys = [], []
    row.full_refresh_pending = True
    row.full_clean()
    row.save()
    ProcessedFile.objects.filter(data_source=data_source).delete()
    return row
