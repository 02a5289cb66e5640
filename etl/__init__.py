"""ETL Runner's engine: extract -> transform -> load with `pyarrow.RecordBatch` streams.

Framework-free: never imports django, celery or ml_platform, never reads the environment
(but for Arrow's allocator options, set before pyarrow is imported: etl/allocator.py).
"""

from typing import Any

import etl.allocator  # noqa: F401  first: sets Arrow's allocator options before pyarrow loads

__version__ = "0.3.0"  # the release (CHANGELOG.md); `pip install .` reads it from here

from etl.config import (
    CONNECTION_KEYS,
    FILE_SOURCES,
    MAX_CLUSTERING_COLUMNS,
    PARTITION_UNITS,
    REQUIRED_CONNECTION_KEYS,
    SECRET_KEYS,
    SOURCE_TYPES,
    TABLE_SOURCES,
    DestinationConfig,
    FileFormatOptions,
    JobConfig,
    needs_cursor,
    unknown_connection_key_message,
    unknown_connection_keys,
)
from etl.exceptions import (
    BadInputError,
    ConfigError,
    EtlError,
    NullCursorError,
    PreviewSchemasDifferError,
    PrimaryKeyError,
    SchemaChangeError,
    SnapshotExpiredError,
    SupersededError,
    TableOwnedError,
    TerminalError,
    TransientError,
    UnknownConnectionKeyError,
)
from etl.extract.listing import ListingBudget
from etl.parallel import (
    ChunkCoordinator,
    ChunkPlan,
    ChunkPlanError,
    ChunkReport,
    chunk_commit,
    chunk_extract,
    chunk_plan,
    run_parallel,
)
from etl.pipeline import ProgressCallback, fault_hook_from_spec, run
from etl.preview import (
    Preview,
    PreviewColumn,
    bigquery_cluster_types,
    check_bigquery_columns,
    destination_types,
    list_files,
    preview,
)
from etl.progress import ProgressDisplay, progress_display
from etl.registry import DESTINATION_TYPES
from etl.state import BoundarySpec, FileRecord, RunResult, SyncState, Watermark


def make_bigquery_client(**kwargs: Any) -> Any:
    """Return a `google.cloud.bigquery.Client`: `etl.bigquery_client.make_client`'s keyword
    arguments (`project`, `credentials`, `api_endpoint`, `location`, `field`) and errors,
    imported on first use (google-cloud-bigquery takes about a second to import)."""
    from etl.bigquery_client import make_client

    return make_client(**kwargs)


__all__ = [
    "__version__",
    "CONNECTION_KEYS",
    "DESTINATION_TYPES",
    "FILE_SOURCES",
    "MAX_CLUSTERING_COLUMNS",
    "PARTITION_UNITS",
    "REQUIRED_CONNECTION_KEYS",
    "SECRET_KEYS",
    "SOURCE_TYPES",
    "TABLE_SOURCES",
    "BadInputError",
    "BoundarySpec",
    "ChunkCoordinator",
    "ChunkPlan",
    "ChunkPlanError",
    "ChunkReport",
    "ConfigError",
    "DestinationConfig",
    "EtlError",
    "FileFormatOptions",
    "FileRecord",
    "JobConfig",
    "ListingBudget",
    "NullCursorError",
    "Preview",
    "PreviewColumn",
    "PreviewSchemasDifferError",
    "PrimaryKeyError",
    "ProgressCallback",
    "ProgressDisplay",
    "RunResult",
    "SchemaChangeError",
    "SnapshotExpiredError",
    "SupersededError",
    "SyncState",
    "TableOwnedError",
    "TerminalError",
    "TransientError",
    "UnknownConnectionKeyError",
    "Watermark",
    "bigquery_cluster_types",
    "check_bigquery_columns",
    "chunk_commit",
    "chunk_extract",
    "chunk_plan",
    "destination_types",
    "fault_hook_from_spec",
    "list_files",
    "make_bigquery_client",
    "needs_cursor",
    "preview",
    "progress_display",
    "run",
    "run_parallel",
    "unknown_connection_key_message",
    "unknown_connection_keys",
]
