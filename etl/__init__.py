"""ETL Runner's engine: extract -> transform -> load with `pyarrow.RecordBatch` streams.

Framework-free: never imports django, celery or ml_platform, never reads the environment.
"""

__version__ = "0.3.0"  # the release (CHANGELOG.md); `pip install .` reads it from here

from etl.config import DestinationConfig, FileFormatOptions, JobConfig
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
from etl.parallel import (
    ChunkCoordinator,
    ChunkPlan,
    ChunkReport,
    chunk_commit,
    chunk_extract,
    chunk_plan,
    run_parallel,
)
from etl.pipeline import run
from etl.state import BoundarySpec, FileRecord, RunResult, SyncState, Watermark

__all__ = [
    "__version__",
    "BadInputError",
    "BoundarySpec",
    "ChunkCoordinator",
    "ChunkPlan",
    "ChunkReport",
    "ConfigError",
    "DestinationConfig",
    "EtlError",
    "FileFormatOptions",
    "FileRecord",
    "JobConfig",
    "NullCursorError",
    "PrimaryKeyError",
    "RunResult",
    "SchemaChangeError",
    "SupersededError",
    "SyncState",
    "TableOwnedError",
    "TerminalError",
    "TransientError",
    "Watermark",
    "chunk_commit",
    "chunk_extract",
    "chunk_plan",
    "run",
    "run_parallel",
]
