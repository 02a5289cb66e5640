"""A live progress line for a person at a terminal (rich), used by the `etl run` command."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from etl.pipeline import ProgressCallback


@contextlib.contextmanager
def progress_display(label: str, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """Yield a `(rows_loaded, bytes_extracted)` callback drawing one live line on stderr: rows,
    in-memory (Arrow) MB, rows/s and elapsed time; log lines written to stderr meanwhile are
    printed above it. The line is removed when the run ends (the caller prints a summary).

    With `enabled=False` (not a terminal, or `--json`) yield None and draw nothing.
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.completed:,} rows"),
        TextColumn("{task.fields[mb]:,.1f} MB in memory"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
        redirect_stderr=True,
    ) as progress:
        task = progress.add_task(label, total=None, mb=0.0, rate=0.0)

        def update(rows: int, nbytes: int) -> None:
            elapsed = progress.tasks[task].elapsed or 0.0
            rate = rows / elapsed if elapsed else 0.0
            progress.update(task, completed=rows, mb=nbytes / 1e6, rate=rate)

        yield update
