"""`python manage.py etl_destination_owners`: report data sources sharing a destination table."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_platform.checks import DESTINATION_CLASH
from ml_platform.services.ownership import destination_clashes_find, destination_key

DESTINATION_CLASHES_FOUND = "{count} destination table clash(es) found; nothing was changed."


class Command(BaseCommand):
    help = (
        "List pairs of data sources that load the same destination table (or its __rejected "
        "table), e.g. created before the one-owner rule; changes nothing, exits 1 when any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--quiet-ok", action="store_true", help="print nothing when there is no clash"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        clashes = destination_clashes_find()
        for first, second in clashes:
            where = destination_key(data_source=second).describe()
            self.stdout.write(
                DESTINATION_CLASH.format(
                    first=first.name,
                    first_id=first.pk,
                    second=second.name,
                    second_id=second.pk,
                    table=f"{second.dest_table_name} ({where})",
                )
            )
        if clashes:
            raise CommandError(DESTINATION_CLASHES_FOUND.format(count=len(clashes)))
        if not options["quiet_ok"]:
            self.stdout.write("No destination table has more than one data source.")
