"""Listing of the objects a file-source job matches (`list_objects`), in the job's store
(etl/extract/filesystems.py)."""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any

import fsspec
import structlog
from fsspec.utils import glob_translate

from etl.exceptions import ConfigError
from etl.extract.filesystems import open_filesystem
from etl.extract.listing import FileSource, ListingBudget
from etl.extract.storage_errors import storage_errors

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StoredObject:
    """One object matched by a job's prefix and pattern."""

    key: str
    """Path relative to the bucket, container or base path (the ledger key), verbatim."""
    url: str
    """Path as the filesystem opens it."""
    version: str
    """Generation (GCS), ETag (S3, Azure) or mtime in ns (local)."""
    size: int
    """Bytes."""
    last_modified: str | None
    """ISO 8601 UTC, when the store reports it."""


def list_objects(
    job: FileSource, budget: ListingBudget | None = None
) -> tuple[fsspec.AbstractFileSystem, list[StoredObject]]:
    """List the objects under `file_prefix` whose relative path matches `file_pattern`.

    With a `budget` the walk stops at its bounds (`budget.truncated` is then True) and the
    objects are those found until then.

    Returns:
        The filesystem and the objects sorted by key. `*` does not cross `/`; `**` does.
        `local`: a symlink whose target is outside `base_path` is skipped with a
        `storage.outside_base_path_skipped` warning naming its key.

    Raises:
        ConfigError: the prefix leaves the base path (local).
        SourceUnavailableError: the store cannot be listed.
    """
    fs, root = open_filesystem(job)
    search_root = _search_root(job, root)
    pattern = re.compile(glob_translate(job.file_pattern.lstrip("/")))
    found = _find(job, fs, root, search_root, budget)
    objects = []
    for path, info in found.items():
        if info.get("type") == "directory":
            continue
        relative = posixpath.relpath(path, search_root)
        key = posixpath.relpath(path, root)
        if job.source_type == "local" and not os.path.realpath(path).startswith(root + os.sep):
            # a symlink leading out of the base path is never read; said, so it is no surprise
            # (a linked folder is never entered, whatever the pattern)
            if pattern.fullmatch(relative) or os.path.isdir(path):
                logger.warning(
                    "storage.outside_base_path_skipped",
                    key=key,
                    reason="symlink to outside connection_params.base_path",
                )
            continue
        if not pattern.fullmatch(relative):
            continue
        objects.append(
            StoredObject(
                key=key,
                url=path,
                version=_version(info),
                size=int(info.get("size") or 0),
                last_modified=_last_modified(info),
            )
        )
    return fs, sorted(objects, key=lambda obj: obj.key)


def _search_root(job: FileSource, root: str) -> str:
    """Return the folder `file_prefix` names under `root`.

    Raises:
        ConfigError: the prefix leaves the base path (local).
    """
    prefix = job.file_prefix.strip("/")
    search_root = posixpath.join(root, prefix) if prefix else root
    if job.source_type == "local":
        real = os.path.realpath(search_root)
        if real != root and not real.startswith(root + os.sep):
            raise ConfigError(
                f"file_prefix {job.file_prefix!r} points outside the base path",
                field="file_prefix",
            )
    return search_root


def _find(
    job: FileSource,
    fs: fsspec.AbstractFileSystem,
    root: str,
    search_root: str,
    budget: ListingBudget | None,
) -> dict[str, Any]:
    """Return path -> details of every file and folder under `search_root` (within `budget`).

    Raises:
        ConfigError: the bucket or container does not exist (or is not visible).
        SourceAuthError, SourceUnavailableError: the store refused or failed the listing.
    """
    with storage_errors(job, search_root):
        try:
            if job.source_type == "local" and not os.path.isdir(search_root):
                found: dict[str, Any] = {}
            else:
                found = (
                    fs.find(search_root, detail=True)
                    if budget is None
                    else budget.find(fs, search_root)
                )
        except FileNotFoundError:
            found = {}
        if not found and job.source_type != "local" and not fs.exists(root):
            # a mistyped bucket must not pass as an empty one, run after run
            field = "container" if job.source_type == "azure_blob" else "bucket"
            raise ConfigError(
                f"{job.source_type} {field} {root!r} does not exist or is not visible with "
                "these credentials",
                field=f"connection_params.{field}",
            )
    return found


def _version(info: dict[str, Any]) -> str:
    for name in ("generation", "ETag", "etag"):
        if info.get(name):
            return str(info[name]).strip('"')
    if info.get("mtime") is not None:
        return str(int(float(info["mtime"]) * 1e9))
    return ""


def _last_modified(info: dict[str, Any]) -> str | None:
    for name in ("updated", "LastModified", "last_modified", "mtime"):
        value = info.get(name)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            value = dt.datetime.fromtimestamp(value, tz=dt.UTC)
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value.astimezone(dt.UTC).isoformat()
        return str(value)
    return None
