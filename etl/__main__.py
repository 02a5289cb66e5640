"""`python -m etl ...`: the same command line as the installed `etl` command (`etl.cli`)."""

from __future__ import annotations

import sys

from etl.cli import main

if __name__ == "__main__":
    sys.exit(main())
