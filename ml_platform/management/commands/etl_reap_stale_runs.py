"""`manage.py etl_reap_stale_runs`: fail the runs whose worker died, so their sources run again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ml_platform.services import etl_run_reap_stale


class Command(BaseCommand):
    help = (
        "Mark failed every running run without a heartbeat for ETL_RUN_STALE_AFTER_S seconds "
        "(its worker died) and every queued run older than ETL_RUN_QUEUED_MAX_AGE_S; a queued "
        "run older than ETL_RUN_QUEUED_STALE_AFTER_S whose message the broker lost is enqueued "
        "again. The next run of each source reconciles the destination. Prints one line per "
        "failed run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-after",
            type=float,
            help="seconds without heartbeat; overrides settings.ETL_RUN_STALE_AFTER_S",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        reaped = etl_run_reap_stale(stale_after_s=options["stale_after"])
        for run in reaped:
            self.stdout.write(
                f"run {run.id} of data source {run.data_source_id}: failed ({run.error_class})"
            )
        self.stdout.write(f"{len(reaped)} stale run(s) marked failed")
