"""`python manage.py run_etl --data-source-id N`: run one data source now, in this process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import etl
from ml_platform import selectors
from ml_platform.models import DataSource, EtlRun
from ml_platform.services import etl_run_create, etl_run_execute
from ml_platform.services.run_logs import etl_run_log_capture

RUN_ETL_UNKNOWN_SOURCE = "Data source {id} does not exist."
RUN_ETL_BUSY = (
    "Data source {source} already has run {run} ({status}); wait for it to finish, or check "
    "its worker."
)
RUN_ETL_FAILED = "Run {run} of data source {source} failed: {error_class}: {message}"


def run_data_source(
    command: BaseCommand, data_source: DataSource, *, trigger: str = EtlRun.Trigger.CLI
) -> EtlRun:
    """Record a run of `data_source`, execute it synchronously through `etl_run_execute`
    (a `rich` progress line when stdout is a terminal) and print its figures.

    Raises:
        CommandError: the source is busy, or the run failed (its error class and message).
    """
    run, created = etl_run_create(data_source=data_source, trigger=trigger)
    if not created:
        raise CommandError(
            RUN_ETL_BUSY.format(source=data_source.id, run=run.id, status=run.status)
        )
    try:
        with _progress_display(command, data_source.name) as display, etl_run_log_capture(run=run):
            run = etl_run_execute(
                run=run,
                progress=display.update if display else None,
                on_estimate=display.set_total if display else None,
            )
    except Exception as exc:  # noqa: BLE001  command boundary: the run is already marked failed
        raise CommandError(
            RUN_ETL_FAILED.format(
                run=run.id,
                source=data_source.id,
                error_class=type(exc).__name__,
                message=selectors.etl_run_get(id=run.id).error_message,
            )
        ) from exc
    seconds = run.duration_s or 0.0
    rate = run.rows_loaded / seconds if seconds else 0.0
    status = run.status_label.lower()
    command.stdout.write(
        f"{data_source.name}: run {run.id} {status}: {run.rows_extracted:,} rows extracted, "
        f"{run.rows_loaded:,} loaded, {run.rows_rejected:,} rejected, {run.rows_skipped:,} skipped, "
        f"{run.bytes_extracted / 1e6:,.1f} MB in memory (Arrow), {seconds:.2f} s, "
        f"{rate:,.0f} rows/s"
        + (
            f", files {run.files_loaded} loaded / {run.files_skipped} unchanged"
            if data_source.connection.type in etl.FILE_SOURCES
            else ""
        )
    )
    for warning in run.warnings:
        command.stdout.write(command.style.WARNING(f"  warning: {warning}"))
    if run.rows_rejected:
        rejected = f"{data_source.dest_table_name}__rejected"
        command.stdout.write(
            command.style.WARNING(f"  {run.rows_rejected:,} rejected row(s) are in {rejected}")
        )
    return run


@contextlib.contextmanager
def _progress_display(command: BaseCommand, label: str) -> Iterator[etl.ProgressDisplay | None]:
    """Yield the `etl run` live line (rows, in-memory MB, rows/s, elapsed; % and ETA once the
    source's row estimate is known; `etl.progress`) on a terminal; on a pipe or file, yield
    None and draw nothing."""
    with etl.progress_display(label, enabled=command.stdout.isatty()) as display:
        yield display


class Command(BaseCommand):
    help = (
        "Run one data source now, in this process, and record it as an EtlRun (trigger cli). "
        "Prints rows extracted/loaded, bytes, seconds and rows/s."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data-source-id", type=int, required=True, help="id of the DataSource to run"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data_source = selectors.data_source_get(id=options["data_source_id"])
        except DataSource.DoesNotExist:
            raise CommandError(
                RUN_ETL_UNKNOWN_SOURCE.format(id=options["data_source_id"])
            ) from None
        run_data_source(self, data_source)
