"""Exactly once under faults (issue 5, item 1; shared/DESIGN.md §5 "Exactly once").

Every test runs the real CLI (`python -m etl run --config ... --state ...`) in a subprocess and
breaks it at one phase, then runs it again without a fault and compares the destination with
the source: row count, per-column sums, distinct keys, and the ids lost and duplicated, which
must be 0 and 0 (the figures are printed, `pytest -s` shows them).

Faults:
- SIGKILL through the test-only hook `ETL_FAULT_INJECT=<phase>[:N]` (read only by
  `etl/cli.py`, see `etl.pipeline.FaultHook`): `extract.batch` (3rd batch read),
  `load.batch` (rows handed to the loader, see KILL_PHASES), `load.before_commit` (all rows written, not
  committed), `load.after_commit` (destination committed, state file not written) and, for
  BigQuery snapshots, `catalog.swap` (copy job done, load log not written). DuckDB swaps a
  snapshot (DROP + RENAME) inside the run's one transaction before the load-log row, so its
  `load.before_commit` kill of a catalog run is the kill in the middle of the swap.
- A broken source connection: the run SIGSTOPs itself after the 3rd batch
  (`ETL_FAULT_INJECT=extract.batch:3:stop`), the test terminates its PostgreSQL backend with
  `pg_terminate_backend` (or cuts the TCP proxy in front of the S3 emulator) and SIGCONTs it.
- Transient BigQuery emulator errors: the same stop, then the TCP proxy in front of the
  emulator drops every connection for 3 seconds just before the commit.

Sources: a crafted PostgreSQL table (20,000 rows: id, timestamptz cursor with 10 rows per
value, numeric(12,2), int, text) and local / S3 CSV files (4,000-row files; one rewritten between
runs); destinations: DuckDB and the BigQuery emulator; load types transactional, catalog and
merge (the table only). Between the first good run and the faulted one the source changes (rows
appended, rows deleted for catalog, rows updated for merge, files added and rewritten), so the
faulted run has real work to lose or duplicate; for merge the comparison of every row's values
also catches a stale version kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_PARAMS, pg_connect
from tests.etl.support import (
    DATASET,
    REPO_ROOT,
    bigquery_destination,
    bq_rows,
    cli_command,
    duck_query,
)

pytestmark = pytest.mark.integration

ROWS_FIRST = 12_000
ROWS_TOTAL = 20_000
BACKEND_KILL_ROWS = 200_000
CHUNK = 1_000
FILE_ROWS = 4_000
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

KILL_PHASES = ["extract.batch:3", "load.batch:1", "load.before_commit", "load.after_commit"]
"""DuckDB reports loaded rows after each INSERT (up to 500,000 rows), so its first `load.batch`
comes with every row of these runs inserted, uncommitted; BigQuery reports each batch written
to its Parquet part, so `load.batch:3` there is the third of several."""


# --- rows, as the source holds them -------------------------------------------------------------


def row(i: int, version: int = 0) -> tuple[int, dt.datetime, Decimal, int, str]:
    """Row `i` (`version` > 0: the rewritten file's variant): id, ts, amount, qty, label."""
    amount = Decimal(i * 37 % 100_000 + version * 7) / 100
    return i, BASE + dt.timedelta(seconds=i // 10), amount, (i + version) % 97, f"r{i}v{version}"


def figures(rows: list[tuple]) -> dict[str, Any]:
    """Row count, distinct ids and per-column sums of `rows` ((id, amount, qty, label) tuples)."""
    return {
        "rows": len(rows),
        "distinct_ids": len({r[0] for r in rows}),
        "sum_id": sum(r[0] for r in rows),
        "sum_amount": sum((r[1] for r in rows), Decimal(0)),
        "sum_qty": sum(r[2] for r in rows),
        "distinct_labels": len({r[3] for r in rows}),
    }


def compare(source: list[tuple], dest: list[tuple], label: str) -> dict[str, int]:
    """Assert `dest` equals `source` row for row; print and return rows lost / duplicated."""
    source_ids = [r[0] for r in source]
    dest_ids = [r[0] for r in dest]
    lost = len(set(source_ids) - set(dest_ids))
    duplicated = len(dest_ids) - len(set(dest_ids))
    extra = len(set(dest_ids) - set(source_ids))
    print(
        f"\n[faults] {label}: source rows {len(source)}, destination rows {len(dest)}, "
        f"rows lost {lost}, rows duplicated {duplicated}, unexpected rows {extra}"
    )
    assert (lost, duplicated, extra) == (0, 0, 0)
    assert figures(dest) == figures(source)
    assert sorted(dest) == sorted(source)
    return {"lost": lost, "duplicated": duplicated}


# --- the CLI in a subprocess --------------------------------------------------------------------


def start_cli(config: dict[str, Any], state_path: Path, fault: str | None) -> subprocess.Popen:
    config_path = state_path.with_name("job.json")
    config_path.write_text(json.dumps(config))
    env = dict(os.environ)
    env.pop("ETL_FAULT_INJECT", None)
    if fault:
        env["ETL_FAULT_INJECT"] = fault
    return subprocess.Popen(
        cli_command(config_path, state_path),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, dict[str, Any] | None, str]:
    stdout, stderr = process.communicate(timeout=180)
    try:
        output = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        output = None
    return process.returncode, output, stderr


def run_ok(config: dict[str, Any], state_path: Path) -> dict[str, Any]:
    code, output, stderr = finish(start_cli(config, state_path, None))
    assert code == 0 and output is not None, f"exit {code}: {output} {stderr[-3000:]}"
    assert output["status"] == "succeeded"
    return output


def run_killed(config: dict[str, Any], state_path: Path, fault: str) -> None:
    """Run with `fault`; the process must die of SIGKILL (the phase was reached)."""
    state_before = state_path.read_bytes() if state_path.exists() else None
    code, output, stderr = finish(start_cli(config, state_path, fault))
    assert code == -signal.SIGKILL, (
        f"{fault} was not reached: exit {code} {output} {stderr[-3000:]}"
    )
    after = state_path.read_bytes() if state_path.exists() else None
    assert after == state_before, "the state file changed although the run was killed"


def wait_stopped(process: subprocess.Popen, timeout_s: float = 120) -> None:
    """Wait until `process` has SIGSTOPped itself (the fault hook's `:stop`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before the fault: {finish(process)}"
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    raise AssertionError("the run never reached the fault")


@contextlib.contextmanager
def stopped_run(config: dict[str, Any], state_path: Path, fault: str) -> Iterator[subprocess.Popen]:
    """Start the CLI with a `:stop` fault and yield it once stopped; SIGKILL it if the test
    fails before it ends (a stopped run holds its source locks)."""
    process = start_cli(config, state_path, fault)
    try:
        wait_stopped(process)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# --- sources ------------------------------------------------------------------------------------


class TableSource:
    """A crafted PostgreSQL table `<schema>.events`; the cursor has 10 rows per value."""

    def __init__(self, schema: str) -> None:
        self.table = f"{schema}.events"
        with pg_connect() as connection:
            connection.execute(
                f"CREATE TABLE {self.table} (id bigint PRIMARY KEY, ts timestamptz NOT NULL, "
                "amount numeric(12,2), qty integer, label text)"
            )
        self.insert(1, ROWS_FIRST)

    def insert(self, first: int, last: int) -> None:
        with pg_connect() as connection:
            connection.execute(
                f"INSERT INTO {self.table} SELECT i, %s::timestamptz + (i / 10) * interval "
                "'1 second', (i * 37 %% 100000)::numeric / 100, i %% 97, 'r' || i || 'v0' "
                "FROM generate_series(%s::bigint, %s::bigint) AS i",
                [BASE, first, last],
            )

    def change(self, catalog: bool, merge: bool = False) -> None:
        """Append rows (ids 12,001..20,000; 12,001..12,009 tie the watermark); for a snapshot
        also delete every 7th row; for merge also update rows: every 11th of the first run's
        with a later cursor, and id 12,000 keeping its cursor value, the watermark (an update
        below the watermark that keeps its cursor is invisible to any incremental read)."""
        self.insert(ROWS_FIRST + 1, ROWS_TOTAL)
        with pg_connect() as connection:
            if catalog:
                connection.execute(f"DELETE FROM {self.table} WHERE id % 7 = 0")
            if merge:
                connection.execute(
                    f"UPDATE {self.table} SET label = label || 'u', qty = qty + 1, "
                    "ts = ts + interval '1 hour' WHERE id %% 11 = 0 AND id <= %s",
                    [ROWS_FIRST],
                )
                connection.execute(
                    f"UPDATE {self.table} SET label = label || 's', amount = amount + 1 "
                    "WHERE id = %s",
                    [ROWS_FIRST],
                )

    def rows(self) -> list[tuple]:
        with pg_connect() as connection:
            return connection.execute(f"SELECT id, amount, qty, label FROM {self.table}").fetchall()

    def config(self, load_type: str) -> dict[str, Any]:
        config: dict[str, Any] = {
            "source_type": "postgresql",
            "connection_params": dict(PG_PARAMS),
            "source_table_name": self.table,
            "load_type": load_type,
            "chunk_size": CHUNK,
        }
        if load_type in ("transactional", "merge"):
            config.update(timestamp_column="ts", primary_key=["id"])
        return config


def csv_bytes(first: int, last: int, version: int = 0) -> bytes:
    lines = ["id,ts,amount,qty,label"]
    for i in range(first, last + 1):
        id_, ts, amount, qty, label = row(i, version)
        lines.append(f"{id_},{ts.isoformat().replace('+00:00', 'Z')},{amount},{qty},{label}")
    return ("\n".join(lines) + "\n").encode()


class FileSource:
    """CSV files `part-NN.csv` of 4,000 rows each, in a local folder or an S3 bucket."""

    def __init__(
        self, put: Callable[[str, bytes], None], params: dict[str, Any], source_type: str
    ) -> None:
        self.put, self.params, self.source_type = put, params, source_type
        self.files: dict[str, tuple[int, int, int]] = {}
        for n in range(1, 4):
            self.write(n, (n - 1) * FILE_ROWS + 1, n * FILE_ROWS)

    def write(self, n: int, first: int, last: int, version: int = 0) -> None:
        key = f"part-{n:02d}.csv"
        self.files[key] = (first, last, version)
        self.put(key, csv_bytes(first, last, version))

    def change(self, catalog: bool) -> None:
        """Add two files and rewrite part-02 with 3,500 changed rows."""
        self.write(4, 3 * FILE_ROWS + 1, 4 * FILE_ROWS)
        self.write(5, 4 * FILE_ROWS + 1, 5 * FILE_ROWS)
        self.write(2, FILE_ROWS + 1, FILE_ROWS + 3_500, version=1)

    def rows(self) -> list[tuple]:
        out = []
        for first, last, version in self.files.values():
            for i in range(first, last + 1):
                id_, _, amount, qty, label = row(i, version)
                out.append((id_, amount, qty, label))
        return out

    def config(self, load_type: str) -> dict[str, Any]:
        return {
            "source_type": self.source_type,
            "connection_params": dict(self.params),
            "file_format": "csv",
            "file_pattern": "*.csv",
            "load_type": load_type,
            "chunk_size": CHUNK,
            "file_format_options": {"column_types": {"amount": "decimal(12,2)"}},
        }


def local_files(folder: Path) -> FileSource:
    folder.mkdir()

    def put(key: str, data: bytes) -> None:
        # a rewrite within the same mtime tick must still look changed: size differs here,
        # and the ledger compares size too
        (folder / key).write_bytes(data)

    return FileSource(put, {"base_path": str(folder)}, "local")


# --- destinations -------------------------------------------------------------------------------


class Destination:
    def __init__(self, kind: str, tmp_path: Path, bq_dataset: str | None, bq_client: Any) -> None:
        self.kind, self.tmp_path, self.dataset, self.client = kind, tmp_path, bq_dataset, bq_client
        self.path = tmp_path / "w.duckdb"

    def block(self, api_endpoint: str | None = None) -> dict[str, Any]:
        if self.kind == "duckdb":
            return {"type": "duckdb", "path": str(self.path), "dataset": DATASET}
        block = bigquery_destination(self.dataset)
        if api_endpoint:
            block["api_endpoint"] = api_endpoint
        return block

    def rows(self, table: str = "events") -> list[tuple]:
        sql_cols = "id, amount, qty, label"
        if self.kind == "duckdb":
            return [
                tuple(r)
                for r in duck_query(self.path, f'SELECT {sql_cols} FROM {DATASET}."{table}"')
            ]
        return bq_rows(self.client, f"SELECT {sql_cols} FROM `{self.dataset}.{table}`")

    def staging_tables(self) -> list[str]:
        """Names of leftover staging tables (must be none after a successful run)."""
        if self.kind == "duckdb":
            names = duck_query(
                self.path,
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                [DATASET],
            )
            return [n for (n,) in names if "__etl_staging" in n]
        return [
            t.table_id
            for t in self.client.list_tables(self.dataset)
            if "__etl_staging" in t.table_id
        ]


@pytest.fixture(params=["duckdb", "bigquery"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    if request.param == "duckdb":
        return Destination("duckdb", tmp_path, None, None)
    return Destination(
        "bigquery",
        tmp_path,
        request.getfixturevalue("bq_dataset"),
        request.getfixturevalue("bigquery_client"),
    )


# --- the kill matrix ----------------------------------------------------------------------------


BIGQUERY_PHASES = {
    ("table", "transactional"): [
        "extract.batch:3",
        "load.batch:3",
        "load.before_commit",
        "load.after_commit",
    ],
    ("table", "catalog"): ["load.before_commit", "catalog.swap", "load.after_commit"],
    ("files", "transactional"): ["load.batch:3", "load.after_commit"],
    ("files", "catalog"): ["catalog.swap", "load.after_commit"],
}
"""The BigQuery kills (each run there takes seconds): every phase for the table append, and the
commit-side phases elsewhere (extraction is the same code whatever the destination)."""


MERGE_PHASES = {
    "duckdb": ["load.batch:1", "load.before_commit", "load.after_commit"],
    "bigquery": ["load.before_commit", "load.after_commit"],
}
"""Merge kills (the table source): the load-side phases in DuckDB (rows staged, merged
uncommitted, committed), the two around the commit holding the MERGE in BigQuery; the
extraction and BigQuery's staging are the append's code, killed above."""

MERGE_SLOW_PHASES = {
    "duckdb": ["extract.batch:3"],
    "bigquery": ["extract.batch:3", "load.batch:3"],
}
"""The remaining merge phases (`make test-slow`: ~15-30 s each, and `make test` kills the same
extraction and staging code under the append above), so every phase is killed for merge too."""


def _cases() -> list[Any]:
    cases = []
    for dest in ["duckdb", "bigquery"]:
        for source in ["table", "files"]:
            for load_type in ["transactional", "catalog"]:
                phases = KILL_PHASES if dest == "duckdb" else BIGQUERY_PHASES[source, load_type]
                for phase in phases:
                    cases.append(
                        pytest.param(
                            dest,
                            source,
                            load_type,
                            phase,
                            id=f"{dest}-{source}-{load_type}-{phase.split(':')[0]}",
                        )
                    )
    for dest, phases in MERGE_PHASES.items():
        for phase in phases:
            cases.append(
                pytest.param(
                    dest, "table", "merge", phase, id=f"{dest}-table-merge-{phase.split(':')[0]}"
                )
            )
    for dest, phases in MERGE_SLOW_PHASES.items():
        for phase in phases:
            cases.append(
                pytest.param(
                    dest,
                    "table",
                    "merge",
                    phase,
                    id=f"{dest}-table-merge-{phase.split(':')[0]}",
                    marks=pytest.mark.slow,
                )
            )
    return cases


@pytest.mark.parametrize(("dest_kind", "source_kind", "load_type", "fault"), _cases())
def test_sigkill_at_phase_then_rerun_loads_exactly_once(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    dest_kind: str,
    source_kind: str,
    load_type: str,
    fault: str,
) -> None:
    """A run SIGKILLed at `fault` leaves the destination as it was before the run or, once the
    destination committed, as it is after it (never in between, never a staging table visible as
    the table); the next run ends with the destination equal to the source: rows lost 0, rows
    duplicated 0."""
    if dest_kind == "duckdb":
        dest = Destination("duckdb", tmp_path, None, None)
    else:
        dest = Destination(
            "bigquery",
            tmp_path,
            request.getfixturevalue("bq_dataset"),
            request.getfixturevalue("bigquery_client"),
        )
    if source_kind == "table":
        source: TableSource | FileSource = TableSource(request.getfixturevalue("pg_schema"))
    else:
        source = local_files(tmp_path / "files")
    config = {**source.config(load_type), "dest_table_name": "events", "destination": dest.block()}
    state_path = tmp_path / "state.json"

    run_ok(config, state_path)
    before = source.rows()
    compare(before, dest.rows(), f"{request.node.callspec.id} first run")
    if source_kind == "table":
        source.change(catalog=load_type == "catalog", merge=load_type == "merge")
    else:
        source.change(catalog=load_type == "catalog")
    after = source.rows()

    run_killed(config, state_path, fault)

    in_between = sorted(dest.rows())
    assert in_between in (sorted(before), sorted(after)), (
        f"after the kill the destination holds {len(in_between)} rows: neither the "
        f"{len(before)} before the run nor the {len(after)} after it"
    )
    committed = run_ok(config, state_path)
    compare(after, dest.rows(), f"{request.node.callspec.id} after recovery")
    if fault == "load.after_commit":
        assert committed["reconciled_run_id"], "the committed run was not rolled forward"
    assert dest.staging_tables() == []
    # one more run finds nothing new and changes nothing
    if load_type != "catalog":
        assert run_ok(config, state_path)["rows_loaded"] == 0
        compare(after, dest.rows(), f"{request.node.callspec.id} idle run")


# --- broken connections -------------------------------------------------------------------------


def test_pg_backend_terminated_mid_extract_then_rerun(
    request: pytest.FixtureRequest, tmp_path: Path, destination: Destination, pg_schema: str
) -> None:
    """The PostgreSQL backend serving the run is terminated after its 3rd batch: the run fails
    with a transient SourceUnavailableError and commits nothing; the next run loads every row
    once."""
    source = TableSource(pg_schema)
    config = {
        **source.config("transactional"),
        "dest_table_name": "events",
        "destination": destination.block(),
    }
    state_path = tmp_path / "state.json"
    run_ok(config, state_path)
    source.change(catalog=False)
    # more rows than the socket and driver buffers hold (~200k rows, ~10 MB), so the rest of
    # the result must still come from the backend when it is terminated
    source.insert(ROWS_TOTAL + 1, BACKEND_KILL_ROWS)
    with stopped_run(config, state_path, "extract.batch:3:stop") as process:
        with pg_connect() as connection:
            killed = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid() AND query LIKE %s",
                [PG_PARAMS["database"], f"%{pg_schema}%"],
            ).fetchall()
        assert len(killed) == 1 and killed[0][0], f"the run's backend was not found: {killed}"
        os.kill(process.pid, signal.SIGCONT)
        code, output, stderr = finish(process)

    assert code == 1 and output is not None, f"exit {code}: {output} {stderr[-3000:]}"
    assert (output["error_class"], output["transient"]) == ("SourceUnavailableError", True), output
    compare(
        [r for r in source.rows() if r[0] <= ROWS_FIRST],
        destination.rows(),
        f"{request.node.callspec.id} after the broken run",
    )
    run_ok(config, state_path)
    compare(source.rows(), destination.rows(), f"{request.node.callspec.id} after recovery")


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of an emulator; `cut()` resets every open connection
    and refuses new ones until `restore()`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = True
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                self._reset(client)
                self.cuts += 1
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                self._reset(client)
                continue
            with self.lock:
                self.sockets.update({client, upstream})
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65_536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    self._reset(sock)
            self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.listener.close()
        self.cut()


@contextlib.contextmanager
def flaky_proxy(url: str) -> Iterator[FlakyProxy]:
    from urllib.parse import urlsplit

    address = urlsplit(url)
    proxy = FlakyProxy(address.hostname or "127.0.0.1", address.port or 80)
    try:
        yield proxy
    finally:
        proxy.close()


def test_s3_emulator_connection_cut_mid_extract_then_rerun(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The S3 emulator's connections are reset after the 3rd batch of a transactional file run
    (new ones refused): the run fails with a transient SourceUnavailableError and commits
    nothing; with the emulator reachable again the next run loads every file's rows once."""
    from tests.etl.extract.conftest import emulator_endpoint, new_bucket

    bucket = new_bucket("s3")
    bucket.create()
    try:
        with flaky_proxy(emulator_endpoint("s3")) as proxy:
            params = {
                **bucket.connection_params(),
                "endpoint_url": f"http://127.0.0.1:{proxy.port}",
            }
            source = FileSource(bucket.put, params, "s3")
            dest = Destination("duckdb", tmp_path, None, None)
            config = {
                **source.config("transactional"),
                "dest_table_name": "events",
                "destination": dest.block(),
            }
            state_path = tmp_path / "state.json"
            run_ok(config, state_path)
            before = source.rows()
            source.change(catalog=False)

            with stopped_run(config, state_path, "extract.batch:3:stop") as process:
                proxy.cut()
                os.kill(process.pid, signal.SIGCONT)
                code, output, stderr = finish(process)
                proxy.restore()

            assert code == 1 and output is not None, f"exit {code}: {output} {stderr[-3000:]}"
            assert (output["error_class"], output["transient"]) == (
                "SourceUnavailableError",
                True,
            ), output
            compare(before, dest.rows(), "s3 cut: after the broken run")
            run_ok(config, state_path)
            compare(source.rows(), dest.rows(), "s3 cut: after recovery")
    finally:
        bucket.delete()


@pytest.mark.parametrize("load_type", ["transactional", "catalog"])
def test_bigquery_emulator_unreachable_at_commit_then_rerun(
    tmp_path: Path, pg_schema: str, bq_dataset: str, bigquery_client: Any, load_type: str
) -> None:
    """Every connection to the BigQuery emulator is reset for 3 seconds just before the commit:
    the run either rides it out with the client's retries or fails with a transient error
    without committing; either way, after the next run the table equals the source."""
    from tests.conftest import emulator_env

    source = TableSource(pg_schema)
    dest = Destination("bigquery", tmp_path, bq_dataset, bigquery_client)
    with flaky_proxy(emulator_env("ETL_BIGQUERY_API_ENDPOINT")) as proxy:
        config = {
            **source.config(load_type),
            "dest_table_name": "events",
            "destination": dest.block(f"http://127.0.0.1:{proxy.port}"),
        }
        state_path = tmp_path / "state.json"
        run_ok(config, state_path)
        before = source.rows()
        source.change(catalog=load_type == "catalog")

        with stopped_run(config, state_path, "load.before_commit:1:stop") as process:
            proxy.cut()
            os.kill(process.pid, signal.SIGCONT)
            time.sleep(3)
            proxy.restore()
            code, output, stderr = finish(process)

        assert output is not None, f"exit {code}: {stderr[-3000:]}"
        if code != 0:
            assert output["transient"] is True, output
            assert sorted(dest.rows()) == sorted(before)
        print(
            f"\n[faults] bigquery {load_type} cut at commit: exit {code}, "
            f"{proxy.cuts} connections refused, {output.get('error_class', 'succeeded')}"
        )
        run_ok(config, state_path)
        compare(source.rows(), dest.rows(), f"bigquery {load_type} cut: after recovery")
