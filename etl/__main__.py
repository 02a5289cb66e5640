"""`python -m etl run --config job.json [--state state.json]`: run one job from files.

Prints the RunResult as JSON on stdout (`status`, `rows_extracted`, `rows_loaded`, `state`, ...)
and writes the new state to `--state` (atomically) only after the load has committed. Exit code
0 on success, 1 on a failed run (the error as JSON on stdout), 2 on bad arguments.

Cloud Run Job mode: `python -m etl run --data-source-id N [--run-id R] [--api-url URL]` gets the
job and state from the control plane at `--api-url` (default: env `ETL_API_URL`) with the
runner credential in env `ETL_RUNNER_TOKEN`, runs it, reports the RunResult (or the failure)
back, and prints it (`etl.runner_client`). The control plane stores the state; `--state` is not
used. The run is named after env `CLOUD_RUN_EXECUTION` / `CLOUD_RUN_TASK_INDEX` when set.

Test-only fault injection: with `ETL_FAULT_INJECT=<phase>[:N[:stop]]` set, the process SIGKILLs
itself (with `:stop`, SIGSTOPs itself, so a test can break a connection and SIGCONT it) the Nth
time (default 1st) the run reaches `<phase>` (see `etl.pipeline.FaultHook`:
`run.planned`, `extract.batch`, `load.batch`, `load.before_commit`, `catalog.swap`,
`load.after_commit`). Only this entry point (and the control plane's test settings) reads it;
the library gets a callback. tests/etl/test_faults.py uses it.
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
from etl.state import SyncState

FAULT_INJECT_ENV = "ETL_FAULT_INJECT"
RUNNER_TOKEN_ENV = "ETL_RUNNER_TOKEN"
API_URL_ENV = "ETL_API_URL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m etl", description=__doc__.splitlines()[0])
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
    args = parser.parse_args(argv)

    from etl.logging import configure_logging
    from etl.pipeline import run

    configure_logging()
    if args.data_source_id is not None:
        return _run_from_api(parser, args, run)
    try:
        job = JobConfig.parse(json.loads(args.config.read_text()))
        state = _read_state(args.state)
        result = run(job, state, run_id=args.run_id, fault_hook=_fault_hook(os.environ))
    except (EtlError, OSError, json.JSONDecodeError) as exc:
        _print_failure(exc)
        return 1
    except KeyboardInterrupt as exc:
        _print_failure(exc, "interrupted before the load committed; nothing was written")
        return 130
    if args.state:
        _write_atomically(args.state, result.state.model_dump_json(indent=2))
    print(result.model_dump_json(by_alias=True, indent=2))
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


def _print_failure(exc: BaseException, message: str | None = None) -> None:
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


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


if __name__ == "__main__":
    sys.exit(main())
