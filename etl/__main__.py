"""`python -m etl run --config job.json [--state state.json]`: run one job from files.

Prints the RunResult as JSON on stdout (`status`, `rows_extracted`, `rows_loaded`, `state`, ...)
and writes the new state to `--state` (atomically) only after the load has committed. Exit code
0 on success, 1 on a failed run (the error as JSON on stdout), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from etl.config import JobConfig, config_error_from
from etl.exceptions import ConfigError, EtlError, TransientError
from etl.state import SyncState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m etl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run one job")
    run_parser.add_argument("--config", type=Path, required=True, help="JobConfig JSON file")
    run_parser.add_argument(
        "--state", type=Path, help="state JSON file; read if it exists, written after success"
    )
    run_parser.add_argument("--run-id", help="run id stamped on loaded rows (default: new UUID)")
    args = parser.parse_args(argv)

    from etl.logging import configure_logging
    from etl.pipeline import run

    configure_logging()
    try:
        job = JobConfig.parse(json.loads(args.config.read_text()))
        state = _read_state(args.state)
        result = run(job, state, run_id=args.run_id)
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
            f"State file {path} is not an ETL Runner state: {error}".replace("Invalid job config: ", ""),
            field=error.field,
        ) from None


def _print_failure(exc: BaseException, message: str | None = None) -> None:
    print(json.dumps({
        "status": "failed",
        "error_class": type(exc).__name__,
        "error": message or str(exc),
        "transient": isinstance(exc, TransientError),
    }))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


if __name__ == "__main__":
    sys.exit(main())
