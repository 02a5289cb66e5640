"""The `etl` command (also `python -m etl`): run, validate and inspect jobs from files.

Commands:
- `etl run --config job.json [--state state.json] [--json] [--full-refresh]`: run one job
  (`--full-refresh`: ignore the state, read everything, replace the table atomically). The new state is
  written to `--state` (atomically) only after the load has committed. On a terminal a live
  progress line (rows, bytes, rows/s, elapsed) is drawn on stderr with the log lines above it;
  then one human summary line is printed on stdout. `--json` prints the whole RunResult as JSON
  instead (`status`, `rows_extracted`, `rows_loaded`, `state`, ...), for scripts; a failure is
  `{"status": "failed", "error_class", "error", "transient"}`.
- `etl run --config job.json --parallel N`: split a PostgreSQL/MySQL table into N key ranges
  read by N local processes and committed once (etl/parallel/, docs/parallel.md); default: the
  job's `parallelism`. With `ETL_FAULT_INJECT=chunk<i>.batch` (test-only) chunk i's first
  attempt SIGKILLs itself after its first staged batch; it is retried alone.
- `etl run --data-source-id N [--run-id R] [--api-url URL]`: Cloud Run Job mode. Gets the job and
  state from the control plane at `--api-url` (default: env `ETL_API_URL`) with the runner
  credential in env `ETL_RUNNER_TOKEN`, runs it, reports the RunResult (or the failure) back and
  prints it as JSON (always: this mode's stdout is read by machines). The run is named after env
  `CLOUD_RUN_EXECUTION` / `CLOUD_RUN_TASK_INDEX` when set. With `CLOUD_RUN_TASK_COUNT` > 1 the
  task extracts the chunk of its `CLOUD_RUN_TASK_INDEX` of a parallel run, task 0 coordinating
  and committing (etl/runner_parallel.py).
- `etl validate --config job.json`: check a job config against the contract; prints `valid`
  (with the job's `description`) or the error naming the field.
- `etl state show --state state.json`: print a state file (watermark, files in the ledger).
- `etl query --duckdb warehouse.duckdb "SELECT ..."`: print a query's rows from a DuckDB
  destination, opened read-only (a read-write session would block the next run's load).
- `etl version`: print the installed version.

Exit codes: 0 success, 1 a failed run or an invalid config, 2 bad arguments, 130 interrupted.

Test-only fault injection: with `ETL_FAULT_INJECT=<phase>[:N[:stop]]` set, the process SIGKILLs
itself (with `:stop`, SIGSTOPs itself, so a test can break a connection and SIGCONT it) the Nth
time (default 1st) the run reaches `<phase>` (see `etl.pipeline.FaultHook`:
`run.planned`, `extract.batch`, `load.batch`, `load.before_commit`, `catalog.swap`,
`load.after_commit`). Only this entry point (and the control plane's test settings) reads it;
the library gets a callback. tests/etl/test_faults.py uses it.

One module past 300 lines on purpose: this docstring is the command's manual (every command, its
flags and exit codes, in one place next to the parser), and the code itself is about 300 lines;
each command's body is its own short function.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from etl.config import JobConfig, config_error_from
from etl.exceptions import ConfigError, EtlError, TransientError
from etl.state import RunResult, SyncState

FAULT_INJECT_ENV = "ETL_FAULT_INJECT"
RUNNER_TOKEN_ENV = "ETL_RUNNER_TOKEN"
API_URL_ENV = "ETL_API_URL"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etl", description="ETL Runner: load databases and files into BigQuery or DuckDB."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="run one job")
    source = run_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="JobConfig JSON file")
    source.add_argument(
        "--data-source-id", type=int, help="Cloud Run Job mode: get the job from the control plane"
    )
    run_parser.add_argument(
        "--api-url", default=os.environ.get(API_URL_ENV, ""), help=f"control plane (${API_URL_ENV})"
    )
    run_parser.add_argument(
        "--state", type=Path, help="state JSON file; read if it exists, written after success"
    )
    run_parser.add_argument("--run-id", help="run id stamped on loaded rows (default: new UUID)")
    run_parser.add_argument(
        "--json", action="store_true", help="print the RunResult as JSON instead of a summary"
    )
    run_parser.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="split the table into N key ranges read by N local processes, committed once "
        "(default: the job's `parallelism`; docs/parallel.md)",
    )
    run_parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="ignore the state, read everything and replace the table with it atomically",
    )

    validate_parser = commands.add_parser("validate", help="check a job config file")
    validate_parser.add_argument("--config", type=Path, required=True, help="JobConfig JSON file")

    state_parser = commands.add_parser("state", help="inspect a state file")
    state_commands = state_parser.add_subparsers(dest="state_command", required=True)
    show_parser = state_commands.add_parser("show", help="print a state file")
    show_parser.add_argument("--state", type=Path, required=True, help="state JSON file")

    query_parser = commands.add_parser("query", help="query a DuckDB destination (read-only)")
    query_parser.add_argument("--duckdb", type=Path, required=True, help="DuckDB database file")
    query_parser.add_argument("sql", help="SQL to run, e.g. 'SELECT count(*) FROM raw_data.t'")
    query_parser.add_argument("--limit", type=int, default=50, help="rows printed (default 50)")

    commands.add_parser("version", help="print the installed version")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `etl` command line with `argv` (default: `sys.argv[1:]`); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        from etl import __version__

        print(f"etl-runner {__version__}")
        return 0
    if args.command == "validate":
        return _validate(args.config)
    if args.command == "state":
        return _state_show(args.state)
    if args.command == "query":
        return _query(args.duckdb, args.sql, args.limit)
    return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from etl.logging import configure_logging
    from etl.pipeline import run
    from etl.progress import progress_display

    interactive = not args.json and args.data_source_id is None and sys.stderr.isatty()
    configure_logging(console=interactive)
    if args.data_source_id is not None:
        return _run_from_api(parser, args, run)
    try:
        job = JobConfig.parse(json.loads(args.config.read_text()))
        state = _read_state(args.state)
        parallel = args.parallel if args.parallel is not None else job.parallelism
        if parallel < 1 or parallel > 64:
            parser.error("--parallel must be between 1 and 64")
        with progress_display(job.dest_table_name, enabled=interactive) as display:
            if parallel > 1:
                from etl.parallel import run_parallel

                result = run_parallel(
                    job.model_copy(update={"parallelism": parallel}),
                    state,
                    processes=parallel,
                    run_id=args.run_id,
                    progress=display.update if display else None,
                    fault_hook=_fault_hook(os.environ),
                    chunk_fault_spec=os.environ.get(FAULT_INJECT_ENV, ""),
                    full_refresh=args.full_refresh,
                )
            else:
                result = run(
                    job,
                    state,
                    run_id=args.run_id,
                    progress=display.update if display else None,
                    on_estimate=display.set_total if display else None,
                    fault_hook=_fault_hook(os.environ),
                    full_refresh=args.full_refresh,
                )
    except (EtlError, OSError, json.JSONDecodeError) as exc:
        _print_failure(exc, as_json=args.json)
        return 1
    except KeyboardInterrupt as exc:
        _print_failure(
            exc, "interrupted before the load committed; nothing was written", as_json=args.json
        )
        return 130
    if args.state:
        _write_atomically(args.state, result.state.model_dump_json(indent=2))
    if args.json:
        print(result.model_dump_json(by_alias=True, indent=2))
    else:
        print(summary_line(result))
    return 0


def summary_line(result: RunResult) -> str:
    """Return the one-line human summary of a run, e.g. `succeeded: raw_data.flights ·
    336,776 rows extracted, 336,776 loaded, 0 skipped, 0 rejected · 33.4 MB in memory (Arrow)
    · 5.18 s · 65,015 rows/s`; files and warnings are added when there are any."""
    parts = [
        f"{result.rows_extracted:,} rows extracted, {result.rows_loaded:,} loaded, "
        f"{result.rows_skipped:,} skipped, {result.rows_rejected:,} rejected",
        f"{result.bytes_extracted / 1e6:,.1f} MB in memory (Arrow)",
        f"{result.duration_s:.2f} s",
        f"{result.rows_per_second:,.0f} rows/s",
    ]
    if result.files_loaded or result.files_skipped:
        parts.append(
            f"{len(result.files_loaded):,} files loaded, {result.files_skipped:,} unchanged"
        )
    status: str = result.status
    if result.warnings:
        status = "succeeded with warnings" if status == "succeeded" else status
        parts.append(f"{len(result.warnings):,} warnings: " + "; ".join(result.warnings))
    return f"{status}: {result.destination_table} · " + " · ".join(parts)


def _validate(path: Path) -> int:
    try:
        job = JobConfig.parse(json.loads(path.read_text()))
    except (ConfigError, OSError, json.JSONDecodeError) as exc:
        print(f"invalid: {path}: {exc}")
        return 1
    print(f"valid: {path}" + (f": {job.description}" if job.description else ""))
    return 0


def _query(path: Path, sql: str, limit: int) -> int:
    import duckdb

    if not path.exists():
        print(f"no DuckDB database at {path}")
        return 1
    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            cursor = connection.execute(sql)
            names = [column[0] for column in cursor.description or []]
            rows = cursor.fetchmany(limit)
            more = bool(cursor.fetchmany(1))
    except duckdb.Error as exc:
        print(f"query failed: {exc}")
        return 1
    cells = [names, *[["NULL" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(names))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print(f"({len(rows):,} rows{', more not shown' if more else ''})")
    return 0


def _state_show(path: Path) -> int:
    if not path.exists():
        print(f"no state: {path} does not exist (the next run is a first run)")
        return 0
    try:
        state = _read_state(path)
    except ConfigError as exc:
        print(str(exc))
        return 1
    print(state.model_dump_json(indent=2))
    return 0


def _run_from_api(parser: argparse.ArgumentParser, args: argparse.Namespace, run: Any) -> int:
    import functools
    import socket

    from etl.runner_client import RunnerClient, run_from_api

    token = os.environ.get(RUNNER_TOKEN_ENV, "").strip()
    if not token:
        parser.error(f"--data-source-id needs the runner credential in ${RUNNER_TOKEN_ENV}")
    if not args.api_url:
        parser.error(f"--data-source-id needs --api-url or ${API_URL_ENV}")
    execution = os.environ.get("CLOUD_RUN_EXECUTION")
    worker = (
        f"{execution}/{os.environ.get('CLOUD_RUN_TASK_INDEX', '0')}"
        if execution
        else f"{socket.gethostname()}:{os.getpid()}"
    )
    task_count = int(os.environ.get("CLOUD_RUN_TASK_COUNT") or 1)
    if task_count > 1:  # a parallel run: this task extracts the chunk of its index
        from etl.runner_parallel import run_task_from_api

        document, succeeded = run_task_from_api(
            RunnerClient(args.api_url, token),
            data_source_id=args.data_source_id,
            run_id=args.run_id,
            worker=worker,
            task_index=int(os.environ.get("CLOUD_RUN_TASK_INDEX") or 0),
            task_count=task_count,
            run=functools.partial(run, fault_hook=_fault_hook(os.environ)),
            fault_hook=_fault_hook(os.environ),
        )
    else:
        document, succeeded = run_from_api(
            RunnerClient(args.api_url, token),
            data_source_id=args.data_source_id,
            run_id=args.run_id,
            worker=worker,
            run=functools.partial(run, fault_hook=_fault_hook(os.environ)),
        )
    print(json.dumps(document, indent=2))
    if succeeded:
        return 0
    return 130 if document.get("error_class") == "KeyboardInterrupt" else 1


def _fault_hook(environ: Mapping[str, str]) -> Callable[[str], None] | None:
    """Return the hook `ETL_FAULT_INJECT=<phase>[:N[:stop]]` asks for, or None when unset."""
    from etl.pipeline import fault_hook_from_spec

    return fault_hook_from_spec(environ.get(FAULT_INJECT_ENV, ""))


def _read_state(path: Path | None) -> SyncState:
    """Return the state in `path` (empty when missing or empty).

    Raises:
        ConfigError: the file is not a state document (names the file and the field).
    """
    if path is None or not path.exists() or not path.stat().st_size:
        return SyncState()
    try:
        return SyncState.model_validate_json(path.read_text())
    except ValidationError as exc:
        error = config_error_from(exc)
        raise ConfigError(
            f"State file {path} is not an ETL Runner state: {error}".replace(
                "Invalid job config: ", ""
            ),
            field=error.field,
        ) from None


def _print_failure(exc: BaseException, message: str | None = None, *, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "status": "failed",
                    "error_class": type(exc).__name__,
                    "error": message or str(exc),
                    "transient": isinstance(exc, TransientError),
                }
            )
        )
    else:
        kind = "transient, a retry may succeed" if isinstance(exc, TransientError) else "terminal"
        print(f"failed ({kind}): {type(exc).__name__}: {message or exc}")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)
