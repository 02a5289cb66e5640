"""fsspec filesystems for the file sources, and listing of the objects a job matches."""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.utils import glob_translate

from etl.config import JobConfig
from etl.exceptions import ConfigError, SourceUnavailableError


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


def open_filesystem(job: JobConfig) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the job's filesystem and the root path every key is relative to.

    Raises:
        ConfigError: `base_path` does not exist (local).
    """
    params = job.connection_params
    if job.source_type == "local":
        root = os.path.realpath(os.path.expanduser(params["base_path"]))
        if not os.path.isdir(root):
            raise ConfigError(
                f"connection_params.base_path {params['base_path']!r} is not a directory",
                field="connection_params.base_path",
            )
        return fsspec.filesystem("file"), root
    raise ConfigError(f"source_type {job.source_type} has no filesystem yet", field="source_type")


def list_objects(job: JobConfig) -> tuple[fsspec.AbstractFileSystem, list[StoredObject]]:
    """List the objects under `file_prefix` whose relative path matches `file_pattern`.

    Returns:
        The filesystem and the objects sorted by key. `*` does not cross `/`; `**` does.

    Raises:
        ConfigError: the prefix leaves the base path (local).
        SourceUnavailableError: the store cannot be listed.
    """
    fs, root = open_filesystem(job)
    prefix = job.file_prefix.strip("/")
    search_root = posixpath.join(root, prefix) if prefix else root
    if job.source_type == "local":
        real = os.path.realpath(search_root)
        if real != root and not real.startswith(root + os.sep):
            raise ConfigError(
                f"file_prefix {job.file_prefix!r} points outside the base path",
                field="file_prefix",
            )
    pattern = re.compile(glob_translate(job.file_pattern.lstrip("/")))
    try:
        found = fs.find(search_root, detail=True) if fs.exists(search_root) else {}
    except OSError as exc:
        raise SourceUnavailableError(f"{job.source_type} {search_root}", str(exc)) from exc
    objects = []
    for path, info in found.items():
        if info.get("type") == "directory":
            continue
        relative = posixpath.relpath(path, search_root)
        if not pattern.fullmatch(relative):
            continue
        if job.source_type == "local":
            real = os.path.realpath(path)
            if not real.startswith(root + os.sep):
                continue  # a symlink leading out of the base path is never read
        key = posixpath.relpath(path, root)
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
            value = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            return value.astimezone(dt.timezone.utc).isoformat()
        return str(value)
    return None
