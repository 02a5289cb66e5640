"""ETL Runner's engine: extract -> transform -> load with `pyarrow.RecordBatch` streams.

Framework-free: never imports django, celery or ml_platform, never reads the environment.
"""

__version__ = "0.3.0"  # the release (CHANGELOG.md); `pip install .` reads it from here

from etl.config import (
    FILE_SOURCES,
    REQUIRED_CONNECTION_KEYS,
    SECRET_KEYS,
    TABLE_SOURCES,
    DestinationConfig,
    FileFormatOptions,
    JobConfig,
    needs_cursor,
)
from etl.exceptions import (
    BadInputError,
    ConfigError,
    EtlError,
    NullCursorError,
    PrimaryKeyError,
    SchemaChangeError,
    SupersededError,
    TableOwnedError,
    TerminalError,
    TransientError,
)
from etl.pipeline import ProgressCallback, run
from etl.registry import DESTINATION_TYPES, SOURCE_TYPES
from etl.state import BoundarySpec, FileRecord, RunResult, SyncState, Watermark

__all__ = [
    "__version__",
    "DESTINATION_TYPES",
    "FILE_SOURCES",
    "REQUIRED_CONNECTION_KEYS",
    "SECRET_KEYS",
    "SOURCE_TYPES",
    "TABLE_SOURCES",
    "BadInputError",
    "BoundarySpec",
    "ConfigError",
    "DestinationConfig",
    "EtlError",
    "FileFormatOptions",
    "FileRecord",
    "JobConfig",
    "NullCursorError",
    "PrimaryKeyError",
    "ProgressCallback",
    "RunResult",
    "SchemaChangeError",
    "SupersededError",
    "SyncState",
    "TableOwnedError",
    "TerminalError",
    "TransientError",
    "Watermark",
    "needs_cursor",
    "run",
]
