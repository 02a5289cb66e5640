"""The only place that reads environment variables (shared/STYLE.md R7)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
