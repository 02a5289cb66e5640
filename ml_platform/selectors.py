"""Every read used by admin, commands, tasks and (later) the API: QuerySets or single rows."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from ml_platform.models import Connection, DataSource, DataSourceState, EtlRun


def connection_list(*, type: str | None = None) -> QuerySet[Connection]:
    """Return connections by name, optionally of one `type`."""
    connections = Connection.objects.order_by("name")
    return connections if type is None else connections.filter(type=type)


def connection_get(*, id: int) -> Connection:
    """Return the connection.

    Raises:
        Connection.DoesNotExist: no connection has this id.
    """
    return Connection.objects.get(id=id)


def data_source_get(*, id: int) -> DataSource:
    """Return the data source with its connection.

    Raises:
        DataSource.DoesNotExist: no data source has this id.
    """
    return DataSource.objects.select_related("connection").get(id=id)


def data_source_get_enabled(*, id: int) -> DataSource | None:
    """Return the data source if it exists and is enabled, else None."""
    return DataSource.objects.select_related("connection").filter(id=id, enabled=True).first()


def data_source_get_by_name(*, name: str) -> DataSource | None:
    return DataSource.objects.select_related("connection").filter(name=name).first()


def data_source_list(
    *,
    enabled: bool | None = None,
    source_type: str | None = None,
    load_type: str | None = None,
    connection_id: int | None = None,
) -> QuerySet[DataSource]:
    """Return data sources by name, optionally filtered by `enabled`, their connection's type,
    their load type or their connection."""
    sources = DataSource.objects.select_related("connection").order_by("name")
    if enabled is not None:
        sources = sources.filter(enabled=enabled)
    if source_type is not None:
        sources = sources.filter(connection__type=source_type)
    if load_type is not None:
        sources = sources.filter(load_type=load_type)
    if connection_id is not None:
        sources = sources.filter(connection_id=connection_id)
    return sources


def etl_run_get(*, id: int) -> EtlRun:
    """Return the run with its data source and connection.

    Raises:
        EtlRun.DoesNotExist: no run has this id.
    """
    return EtlRun.objects.select_related("data_source__connection").get(id=id)


def etl_run_list(
    *,
    data_source: DataSource | None = None,
    data_source_id: int | None = None,
    status: str | None = None,
    trigger: str | None = None,
    queued_after: datetime | None = None,
    queued_before: datetime | None = None,
) -> QuerySet[EtlRun]:
    """Return runs, newest first, optionally of one data source, status and trigger, queued in
    `[queued_after, queued_before)`."""
    runs = (
        EtlRun.objects.select_related("data_source")
        .prefetch_related("chunks")
        .order_by("-queued_at", "-id")
    )
    if data_source is not None:
        runs = runs.filter(data_source=data_source)
    if data_source_id is not None:
        runs = runs.filter(data_source_id=data_source_id)
    if status is not None:
        runs = runs.filter(status=status)
    if trigger is not None:
        runs = runs.filter(trigger=trigger)
    if queued_after is not None:
        runs = runs.filter(queued_at__gte=queued_after)
    if queued_before is not None:
        runs = runs.filter(queued_at__lt=queued_before)
    return runs


def etl_run_get_active(*, data_source: DataSource) -> EtlRun | None:
    """Return the data source's queued or running run, if any (at most one exists)."""
    return EtlRun.objects.filter(data_source=data_source, status__in=EtlRun.ACTIVE_STATUSES).first()


def etl_run_list_stale(*, running_before: datetime, queued_before: datetime) -> QuerySet[EtlRun]:
    """Return running runs without a heartbeat (`updated_at`) since `running_before` and queued
    runs queued before `queued_before`, oldest first."""
    return (
        EtlRun.objects.filter(
            Q(status=EtlRun.Status.RUNNING, updated_at__lt=running_before)
            | Q(status=EtlRun.Status.QUEUED, queued_at__lt=queued_before)
        )
        .select_related("data_source")
        .order_by("queued_at", "id")
    )


def etl_run_get_by_idempotency_key(*, data_source: DataSource, key: str) -> EtlRun | None:
    """Return the run `key` created, else the run it was answered with (`EtlRunKey`)."""
    run = EtlRun.objects.filter(data_source=data_source, idempotency_key=key).first()
    if run is None:
        run = EtlRun.objects.filter(data_source=data_source, keys__key=key).first()
    return run


def sync_state_get(*, data_source: DataSource) -> DataSourceState | None:
    return DataSourceState.objects.filter(data_source=data_source).first()


def data_source_list_overview() -> QuerySet[DataSource]:
    """Return every data source with its connection, by name, annotated with its latest run's
    `last_run_id`, `last_run_status`, `last_run_rows_loaded` (rows) and `last_run_queued_at`
    (None when it never ran)."""
    from django.db.models import OuterRef, Subquery

    latest = EtlRun.objects.filter(data_source=OuterRef("pk")).order_by("-queued_at", "-id")
    return (
        DataSource.objects.select_related("connection")
        .annotate(
            last_run_id=Subquery(latest.values("id")[:1]),
            last_run_status=Subquery(latest.values("status")[:1]),
            last_run_rows_loaded=Subquery(latest.values("rows_loaded")[:1]),
            last_run_queued_at=Subquery(latest.values("queued_at")[:1]),
        )
        .order_by("name")
    )


def etl_run_latest_by_source(*, sources: list[DataSource]) -> tuple[dict, dict]:
    """Return `(latest, last_success)`: data source id -> its newest run, and -> its newest
    succeeded run (absent when none), in two queries."""
    from django.db.models import Max

    ids = [source.pk for source in sources]
    latest_ids = (
        EtlRun.objects.filter(data_source_id__in=ids)
        .values("data_source_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    success_ids = (
        EtlRun.objects.filter(data_source_id__in=ids, status=EtlRun.Status.SUCCEEDED)
        .values("data_source_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    latest = {run.data_source_id: run for run in EtlRun.objects.filter(id__in=list(latest_ids))}
    success = {run.data_source_id: run for run in EtlRun.objects.filter(id__in=list(success_ids))}
    return latest, success


def etl_run_rows_trend(*, data_source: DataSource, runs: int = 10) -> list[int]:
    """Rows loaded by the source's last `runs` succeeded runs, oldest first."""
    rows = (
        EtlRun.objects.filter(data_source=data_source, status=EtlRun.Status.SUCCEEDED)
        .order_by("-id")
        .values_list("rows_loaded", flat=True)[:runs]
    )
    return list(reversed(rows))
