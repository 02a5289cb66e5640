"""Start, check and stop the local cloud emulators used by the tests and the benchmarks.

    python scripts/emulators.py start    # start what is not running, wait until each answers,
                                         # print the endpoints as `export NAME=value` lines
    python scripts/emulators.py env      # print the endpoints of the running emulators
    python scripts/emulators.py stop     # stop exactly the processes `start` started
    python scripts/emulators.py run -- CMD ...   # start missing ones, run CMD with the
                                                 # endpoints in its environment, stop those
                                                 # it started, exit with CMD's code

Services (shared/DESIGN.md §6), each on 127.0.0.1 and a free port: S3 (moto_server), GCS
(gcp-storage-emulator, data in var/emulators/gcs so the BigQuery emulator's gs:// loads read
it), Azure Blob (Azurite from node_modules) and BigQuery (bqemulator from .venv-bqemu). State
(pids, ports) lives in var/emulators/state.json.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / "var" / "emulators"
STATE_FILE = STATE_DIR / "state.json"
VENV_BIN = Path(sys.executable).parent
BQ_VENV_BIN = ROOT / ".venv-bqemu" / "bin"
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""Azurite's well-known development account key (public, documented by Microsoft)."""
BIGQUERY_PROJECT = "test-project"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _specs() -> dict[str, dict]:
    gcs_dir = STATE_DIR / "gcs"
    return {
        "s3": {
            "cmd": lambda p: [
                str(VENV_BIN / "moto_server"),
                "-H",
                "127.0.0.1",
                "-p",
                str(p["port"]),
            ],
            "health": lambda p: f"http://127.0.0.1:{p['port']}/moto-api/",
        },
        "gcs": {
            "cmd": lambda p: [
                str(VENV_BIN / "gcp-storage-emulator"),
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(p["port"]),
                "--default-bucket",
                "etl-default",
            ],
            "env": {"STORAGE_BASE": str(gcs_dir.parent), "STORAGE_DIR": gcs_dir.name},
            "health": lambda p: f"http://127.0.0.1:{p['port']}/",
        },
        "azure_blob": {
            "cmd": lambda p: [
                str(AZURITE),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(p["port"]),
                "--location",
                str(STATE_DIR / "azurite"),
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--silent",
            ],
            "health": lambda p: f"http://127.0.0.1:{p['port']}/{AZURITE_ACCOUNT}?comp=list",
        },
        "bigquery": {
            "cmd": lambda p: [
                str(BQ_VENV_BIN / "bqemulator"),
                "start",
                "--rest-host",
                "127.0.0.1",
                "--rest-port",
                str(p["port"]),
                "--grpc-port",
                str(p["grpc_port"]),
                "--ephemeral",
                "--project",
                BIGQUERY_PROJECT,
            ],
            "env": {
                "HOME": str(STATE_DIR / "bqhome"),
                "BQEMU_UPLOAD_STAGING_DIR": str(STATE_DIR / "bqstage"),
                "BQEMU_GCS_LOCAL_ROOT": str(gcs_dir),
            },
            "health": lambda p: f"http://127.0.0.1:{p['port']}/healthz",
            "timeout": 60,
        },
    }


def endpoints(state: dict) -> dict[str, str]:
    """Return the environment variables that point clients at the running emulators."""
    env = {}
    if "s3" in state:
        env["ETL_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{state['s3']['port']}"
    if "gcs" in state:
        env["ETL_GCS_ENDPOINT_URL"] = f"http://127.0.0.1:{state['gcs']['port']}"
        env["STORAGE_EMULATOR_HOST"] = env["ETL_GCS_ENDPOINT_URL"]
        env["ETL_GCS_DATA_DIR"] = str(STATE_DIR / "gcs")
    if "azure_blob" in state:
        url = f"http://127.0.0.1:{state['azure_blob']['port']}/{AZURITE_ACCOUNT}"
        env["ETL_AZURE_BLOB_CONNECTION_STRING"] = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={url};"
        )
    if "bigquery" in state:
        env["ETL_BIGQUERY_API_ENDPOINT"] = f"http://127.0.0.1:{state['bigquery']['port']}"
        env["ETL_BIGQUERY_PROJECT"] = BIGQUERY_PROJECT
        # the Storage Read API (gRPC, plain text) on bqemulator's --grpc-port
        env["ETL_BIGQUERY_STORAGE_API_ENDPOINT"] = (
            f"http://127.0.0.1:{state['bigquery']['grpc_port']}"
        )
    return env


def _load_state() -> dict:
    if not STATE_FILE.exists():
        return {}
    state = json.loads(STATE_FILE.read_text())
    specs = _specs()
    return {
        name: info
        for name, info in state.items()
        if _alive(info["pid"]) and _answers(specs[name]["health"](info))
    }


def start() -> list[str]:
    """Start every emulator that is not answering; return the names started."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    for folder in ("gcs", "azurite", "bqhome", "bqstage", "logs"):
        (STATE_DIR / folder).mkdir(exist_ok=True)
    state, started = _load_state(), []
    specs = _specs()
    missing = [
        f"{name}: {path}"
        for name, path in (
            ("s3", VENV_BIN / "moto_server"),
            ("gcs", VENV_BIN / "gcp-storage-emulator"),
            ("azure_blob", AZURITE),
            ("bigquery", BQ_VENV_BIN / "bqemulator"),
        )
        if name not in state and not path.exists()
    ]
    if missing:
        sys.exit("emulators not installed (run `make emulators-install`): " + "; ".join(missing))
    if "bigquery" not in state:
        subprocess.run(
            [
                str(BQ_VENV_BIN / "python"),
                "-c",
                "import duckdb_extensions; duckdb_extensions.import_extension('spatial')",
            ],
            env={**os.environ, "HOME": str(STATE_DIR / "bqhome")},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    for name, spec in specs.items():
        if name in state:
            continue
        info = {"port": _free_port(), "grpc_port": _free_port()}
        log = open(STATE_DIR / "logs" / f"{name}.log", "ab")  # noqa: SIM115  owned by the child
        process = subprocess.Popen(
            spec["cmd"](info),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **spec.get("env", {})},
            cwd=STATE_DIR,
            start_new_session=True,
        )
        info["pid"] = process.pid
        deadline = time.monotonic() + spec.get("timeout", 30)
        while not _answers(spec["health"](info)):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                tail = (STATE_DIR / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                sys.exit(f"emulator {name} did not start:\n{tail}")
            time.sleep(0.2)
        state[name] = info
        started.append(name)
        STATE_FILE.write_text(json.dumps(state, indent=2))
    STATE_FILE.write_text(json.dumps(state, indent=2))
    return started


def stop(names: list[str] | None = None) -> None:
    """Stop the emulators in `names` (all recorded ones when None)."""
    if not STATE_FILE.exists():
        return
    state = json.loads(STATE_FILE.read_text())
    for name in list(state):
        if names is not None and name not in names:
            continue
        pid = state.pop(name)["pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            continue
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    STATE_FILE.write_text(json.dumps(state, indent=2))


def _print_env(state: dict) -> None:
    for key, value in endpoints(state).items():
        print(f"export {key}='{value}'")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "start"
    if command == "start":
        start()
        _print_env(_load_state())
        return 0
    if command == "env":
        _print_env(_load_state())
        return 0
    if command == "stop":
        stop()
        return 0
    if command == "run":
        args = argv[1:]
        if args[:1] == ["--"]:
            args = args[1:]
        started = start()
        try:
            env = {**os.environ, **endpoints(_load_state())}
            return subprocess.call(args, env=env)
        finally:
            stop(started)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
