"""Writes of `DataSource`: every save is validated against the engine's config contract."""

from __future__ import annotations

from typing import Any

from django.db import transaction

import etl
from ml_platform import contract
from ml_platform.models import Connection, DataSource
from ml_platform.services.common import model_fields_apply
from ml_platform.services.destinations import data_source_destination_columns_check
from ml_platform.services.job_config import job_config_build, validation_error_from
from ml_platform.services.ownership import destination_owner_check
from ml_platform.services.schedules import (  # noqa: F401  messages re-exported
    SCHEDULE_CRON_INVALID,
    SCHEDULE_TIMEZONE_INVALID,
    schedule_delete,
    schedule_sync,
    schedule_validate,
)
from ml_platform.services.secrets import secret_apply, secret_dump

UPDATABLE_FIELDS = contract.data_source_fields()
"""Every `DataSource` field a person sets (the model's editable fields but the secret)."""


@transaction.atomic
def data_source_create(
    *,
    name: str,
    connection: Connection,
    dest_table_name: str,
    destination_credentials: dict[str, Any] | str | None = None,
    **fields: Any,
) -> DataSource:
    """Create a data source whose fields form a valid `etl.JobConfig` with its connection.

    `fields` are the other `DataSource` fields (`UPDATABLE_FIELDS`: the config contract of
    DESIGN.md §4, schedule, alerts); an omitted or None field takes the model's default.
    `destination` is the destination block without credentials; `destination_credentials`
    (service-account JSON object, or "anonymous") is encrypted at rest.

    With `schedule_cron` set (and `enabled`), the schedule executor's task or job is created.
    `parallelism` (1..64) splits a PostgreSQL/MySQL table read into that many key ranges read
    at once (`services.runs_parallel`).
    `alert_emails` (comma-separated), `alert_webhook_url` and `alert_stale_after_s` (seconds)
    add to the global alert settings (`services.alerts`).

    Raises:
        ValidationError: keyed by the field at fault, with the contract's message; also when
            the schedule executor refused the schedule (`schedule_cron`), or by each argument
            that is not a field a person sets.
    """
    data_source = DataSource(name=name, connection=connection, dest_table_name=dest_table_name)
    given = {key: value for key, value in fields.items() if value is not None}
    model_fields_apply(instance=data_source, data=given, updatable=UPDATABLE_FIELDS)
    data_source.destination_credentials = secret_dump(destination_credentials)
    data_source_validate(data_source=data_source)
    data_source.save()
    # inside the transaction: a schedule the executor refuses rolls the save back
    schedule_sync(data_source=data_source)
    return data_source


@transaction.atomic
def data_source_update(
    *,
    data_source: DataSource,
    data: dict[str, Any] | None = None,
    destination_credentials: dict[str, Any] | str | None = None,
    clear_destination_credentials: bool = False,
) -> DataSource:
    """Update the fields named in `data` (see `UPDATABLE_FIELDS`) and re-validate the contract.

    The scheduled task or job follows the result: created, changed or removed.

    Raises:
        ValidationError: an unknown field, the result is not a valid `etl.JobConfig`, or the
            schedule executor refused the schedule.
    """
    model_fields_apply(instance=data_source, data=data or {}, updatable=UPDATABLE_FIELDS)
    secret_apply(
        instance=data_source,
        field="destination_credentials",
        value=destination_credentials,
        clear=clear_destination_credentials,
    )
    data_source_validate(data_source=data_source)
    data_source.save()
    schedule_sync(data_source=data_source)
    return data_source


def data_source_validate(*, data_source: DataSource) -> None:
    """Check fields, the destination table's owner (one source per table, see
    `services.ownership`), schedule and the config contract (by building the JobConfig),
    without saving.

    Raises:
        ValidationError: keyed by the `DataSource` field at fault.
    """
    data_source.full_clean()
    destination_owner_check(data_source=data_source)
    schedule_validate(
        cron=data_source.schedule_cron,
        timezone=data_source.schedule_timezone,
        destination_type=(data_source.destination or {}).get("type"),
    )
    try:
        job_config_build(data_source=data_source)
        # partition / clustering columns against the source's, when they can be read now
        data_source_destination_columns_check(data_source=data_source)
    except etl.ConfigError as exc:
        raise validation_error_from(exc) from exc


DATA_SOURCE_BUSY = "Data source {name} has run {run_id} {status}; delete it when the run ends."


@transaction.atomic
def data_source_delete(*, data_source: DataSource) -> None:
    """Delete a data source with its runs, sync state, file ledger and scheduled task or job
    (the destination table is left as it is).

    Raises:
        ApplicationError: a run of it is queued or running.
    """
    from ml_platform.exceptions import ApplicationError
    from ml_platform.models import EtlRun

    active = data_source.runs.filter(status__in=EtlRun.ACTIVE_STATUSES).first()
    if active is not None:
        raise ApplicationError(
            DATA_SOURCE_BUSY.format(name=data_source.name, run_id=active.id, status=active.status)
        )
    schedule_delete(data_source=data_source)
    data_source.delete()
