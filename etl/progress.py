"""A live progress line for a person at a terminal (rich), used by `etl run` and `run_etl`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class ProgressDisplay:
    """The callbacks a run reports to: `update(rows_loaded, bytes_extracted)` after batches and
    `set_total(rows)` when the source's row estimate is known (then % and ETA are shown)."""

    progress: Any
    task: Any

    def update(self, rows: int, nbytes: int) -> None:
        elapsed = self.progress.tasks[self.task].elapsed or 0.0
        rate = rows / elapsed if elapsed else 0.0
        self.progress.update(self.task, completed=rows, mb=nbytes / 1e6, rate=rate)

    def set_total(self, rows: int) -> None:
        self.progress.update(self.task, total=rows)


@contextlib.contextmanager
def progress_display(label: str, *, enabled: bool) -> Iterator[ProgressDisplay | None]:
    """Yield a `ProgressDisplay` drawing one live line on stderr: rows, in-memory (Arrow) MB,
    rows/s and elapsed time, plus a bar with % and ETA once a row estimate is known; log lines
    written to stderr meanwhile are printed above it. The line is removed when the run ends
    (the caller prints a summary).

    With `enabled=False` (not a terminal, or `--json`) yield None and draw nothing.
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        TaskProgressColumn(),
        TextColumn("{task.completed:,} rows"),
        TextColumn("{task.fields[mb]:,.1f} MB in memory"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
        redirect_stderr=True,
    ) as progress:
        task = progress.add_task(label, total=None, mb=0.0, rate=0.0)
        yield ProgressDisplay(progress, task)
