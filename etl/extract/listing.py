"""What listing a file source takes: the job's fields it reads (`FileSource`) and the bounds of
an interactive listing (`ListingBudget`). No store library is imported here: `import etl` stays
light."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol


class FileSource(Protocol):
    """What listing and opening a store reads of a job (a `JobConfig` is one;
    `etl.preview.FileQuery` another, for listing without a job)."""

    @property
    def source_type(self) -> str: ...
    @property
    def connection_params(self) -> dict[str, Any]: ...
    @property
    def file_prefix(self) -> str: ...
    @property
    def file_pattern(self) -> str: ...


@dataclass
class ListingBudget:
    """Bounds of an interactive listing (browsing a connection's files): the walk stops after
    `max_entries` files and folders seen or `max_seconds` (wall clock), and `truncated` then
    says so. A run's listing has none: it must see every file."""

    max_entries: int
    max_seconds: float
    truncated: bool = False

    def find(self, fs: Any, path: str) -> dict[str, dict[str, Any]]:
        """`fs.find(path, detail=True)` folder by folder, stopping at the bounds."""
        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + self.max_seconds
        seen = 0
        walk = fs.walk(path, detail=True)
        try:
            for _folder, folders, files in walk:
                for info in files.values():
                    found[info["name"]] = info
                seen += len(files) + len(folders)
                if seen >= self.max_entries or time.monotonic() >= deadline:
                    self.truncated = True
                    break
        finally:
            walk.close()
        return found
