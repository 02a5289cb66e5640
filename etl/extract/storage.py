"""fsspec filesystems for the file sources, and listing of the objects a job matches."""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import fsspec
import structlog
from fsspec.utils import glob_translate

from etl.config import SECRET_KEYS
from etl.exceptions import (
    ConfigError,
    EtlError,
    MissingDependencyError,
    SourceAuthError,
    SourceUnavailableError,
)
from etl.extract.listing import ListingBudget

logger = structlog.get_logger(__name__)

READ_BLOCK_SIZE = 8 << 20
"""Bytes fetched per ranged read from object stores: memory per open file stays near this."""


GCS_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"


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


def open_filesystem(job: FileSource) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the job's filesystem and the root path every key is relative to.

    `local`: `base_path`; `s3`: the bucket (s3fs); `gcs`: the bucket (gcsfs); `azure_blob`: the
    container (adlfs). Credentials come from `connection_params` (DESIGN.md §4); an optional
    `endpoint_url` points at an S3-compatible store or an emulator.

    Raises:
        ConfigError: `base_path` does not exist (local), or credentials are incomplete.
        MissingDependencyError: the filesystem package is not installed.
    """
    params = job.connection_params
    kind = job.source_type
    if kind == "local":
        root = os.path.realpath(os.path.expanduser(params["base_path"]))
        if not os.path.isdir(root):
            raise ConfigError(
                f"connection_params.base_path {params['base_path']!r} is not a directory",
                field="connection_params.base_path",
            )
        return fsspec.filesystem("file"), root
    if kind == "s3":
        return _s3(params), params["bucket"].strip("/")
    if kind == "gcs":
        return _gcs(params), params["bucket"].strip("/")
    if kind == "azure_blob":
        return _azure(params), params["container"].strip("/")
    raise ConfigError(f"source_type {kind} is not a file source", field="source_type")


def _s3(params: dict[str, Any]) -> fsspec.AbstractFileSystem:
    try:
        import s3fs
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("s3fs[boto3]", "The s3 source") from exc
    key, secret = params.get("aws_access_key_id"), params.get("aws_secret_access_key")
    if bool(key) != bool(secret):
        raise ConfigError(
            "give both aws_access_key_id and aws_secret_access_key, or neither (default chain)",
            field="connection_params.aws_secret_access_key",
        )
    client_kwargs = {"region_name": params.get("region") or None}
    if params.get("endpoint_url"):
        client_kwargs["endpoint_url"] = params["endpoint_url"]
    return s3fs.S3FileSystem(
        key=key or None,
        secret=secret or None,
        token=params.get("aws_session_token") or None,
        client_kwargs=client_kwargs,
        skip_instance_cache=True,
        default_block_size=READ_BLOCK_SIZE,
    )


def _gcs(params: dict[str, Any]) -> fsspec.AbstractFileSystem:
    # gcsfs 2026.x probes a gRPC endpoint for hierarchical-namespace buckets on every call
    # unless this is off; an emulator (or a firewall) makes each probe wait 60 s.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        import gcsfs
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("gcsfs", "The gcs source") from exc
    credentials = params.get("credentials")
    if credentials == "anonymous":
        token: Any = "anon"
    elif credentials is None:
        token = "google_default"
    elif isinstance(credentials, (dict, str)):
        try:
            token = json.loads(credentials) if isinstance(credentials, str) else credentials
        except ValueError:
            raise ConfigError(
                'credentials must be a service-account JSON object, null or "anonymous"',
                field="connection_params.credentials",
            ) from None  # the text is a secret: never chained into tracebacks
        from google.oauth2 import service_account

        # built here, not by gcsfs: it hides a malformed key behind a KeyError('refresh_token')
        try:
            token = service_account.Credentials.from_service_account_info(
                token, scopes=[GCS_READ_SCOPE]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                "credentials are not a valid service-account JSON key "
                f"({_redact(_first_line(exc), params)})",
                field="connection_params.credentials",
            ) from exc
    else:
        raise ConfigError(
            'credentials must be a service-account JSON object, null or "anonymous"',
            field="connection_params.credentials",
        )
    return gcsfs.GCSFileSystem(
        project=params.get("project"),
        token=token,
        endpoint_url=params.get("endpoint_url") or None,
        skip_instance_cache=True,
        block_size=READ_BLOCK_SIZE,
    )


def _azure(params: dict[str, Any]) -> fsspec.AbstractFileSystem:
    try:
        import adlfs
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("adlfs", "The azure_blob source") from exc
    kwargs: dict[str, Any] = {"skip_instance_cache": True, "blocksize": READ_BLOCK_SIZE}
    if params.get("connection_string"):
        kwargs["connection_string"] = params["connection_string"]
    elif params.get("account_name") and (params.get("account_key") or params.get("sas_token")):
        kwargs["account_name"] = params["account_name"]
        if params.get("account_key"):
            kwargs["account_key"] = params["account_key"]
        else:
            kwargs["sas_token"] = params["sas_token"]
        if params.get("endpoint_url"):
            kwargs["account_host"] = params["endpoint_url"]
    else:
        raise ConfigError(
            "azure_blob needs connection_string, or account_name with account_key or sas_token",
            field="connection_params",
        )
    try:
        return adlfs.AzureBlobFileSystem(**kwargs)
    except ValueError as exc:  # a malformed connection string or account URL
        raise ConfigError(
            f"cannot use these Azure credentials: {_redact(_first_line(exc), params)}",
            field="connection_params",
        ) from exc


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


@contextmanager
def storage_errors(job: FileSource, where: str) -> Iterator[None]:
    """Re-raise a store's errors inside the block as the engine's, naming `where`.

    Raises:
        SourceAuthError: credentials rejected or access denied (terminal).
        SourceUnavailableError: network failure, timeout, server error, or an object that
            vanished between listing and reading (transient).
    """
    try:
        yield
    except Exception as exc:
        # one clause naming a builtin: a generator finalized at interpreter exit (its module's
        # globals already None) throws GeneratorExit here, and a clause naming a module global
        # (`except EtlError:`) then raised "catching classes that do not inherit from
        # BaseException" instead of letting it through
        if isinstance(exc, EtlError):
            raise
        kind = _classify(exc)
        if kind is None:
            raise
        reason = _redact(_first_line(exc), job.connection_params)
        source = f"{job.source_type} {where}"
        if kind == "auth":
            raise SourceAuthError(source, reason) from exc
        raise SourceUnavailableError(source, reason) from exc


_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationFailure",
        "AuthenticationFailed",
        "AuthorizationPermissionMismatch",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "InvalidAuthenticationInfo",
    }
)
"""Error codes (S3, Azure) that mean the credentials or permissions are wrong."""
_AUTH_CLASSES = frozenset(
    {
        "ClientAuthenticationError",
        "NoCredentialsError",
        "PartialCredentialsError",
        "RefreshError",
        "DefaultCredentialsError",
    }
)
_NETWORK_CLASSES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ServiceRequestError",
        "ServiceResponseError",
        "ClientConnectionError",
        "ServerTimeoutError",
        "TransportError",
    }
)


def _classify(exc: BaseException) -> str | None:
    """`auth`, `network` or None; by class name, so no optional SDK is imported here."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    code = getattr(exc, "error_code", None)  # azure
    code = getattr(code, "value", code)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = response.get("Error", {}).get("Code") or code
    if isinstance(exc, PermissionError) or names & _AUTH_CLASSES or code in _AUTH_CODES:
        return "auth"
    if status in (401, 403):
        return "auth"
    if isinstance(exc, (OSError, TimeoutError)) or names & _NETWORK_CLASSES:
        return "network"
    if isinstance(status, int) and (status >= 500 or status in (408, 429)):
        return "network"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500].rstrip(".") if text else type(exc).__name__


def _redact(text: str, params: dict[str, Any]) -> str:
    """Remove every secret of `params` (whole values and the key parts of a connection string)."""
    secrets: list[str] = []
    for key, value in params.items():
        if key not in SECRET_KEYS or not value:
            continue
        if isinstance(value, dict):
            secrets.extend(str(v) for v in value.values() if isinstance(v, str) and len(v) > 8)
        else:
            secrets.append(str(value))
            secrets.extend(
                part.split("=", 1)[1]
                for part in str(value).split(";")
                if part.split("=", 1)[0] in ("AccountKey", "SharedAccessSignature") and "=" in part
            )
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


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
