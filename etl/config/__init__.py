"""`JobConfig`: the config contract of shared/DESIGN.md §4, validated.

One JobConfig describes one data source: where rows come from (`source_type`,
`connection_params`, table / custom SQL / files), how they are loaded (`load_type`,
`timestamp_column`, `primary_key`, ...) and where they go (`destination`). Field names are kept
from the original platform so existing configs keep working. Secrets are plain values here; the
control plane resolves them from encrypted storage, and `repr()` never shows them.

Modules: `base` (types, required and secret connection keys), `files` (`FileFormatOptions`),
`destination` (`DestinationConfig`, BigQuery table options), `job` (`JobConfig`).
"""

from etl.config.base import (
    CONNECTION_KEYS,
    FILE_SOURCES,
    REQUIRED_CONNECTION_KEYS,
    SECRET_KEYS,
    SOURCE_TYPES,
    TABLE_SOURCES,
    FileFormat,
    LoadType,
    SourceType,
    WriteDisposition,
    needs_cursor,
    unknown_connection_key_message,
    unknown_connection_keys,
)
from etl.config.destination import (
    MAX_CLUSTERING_COLUMNS,
    MAX_RANGE_PARTITIONS,
    PARTITION_UNITS,
    DestinationConfig,
    Partitioning,
)
from etl.config.files import FileFormatOptions
from etl.config.job import JobConfig, config_error_from

__all__ = [
    "CONNECTION_KEYS",
    "FILE_SOURCES",
    "MAX_CLUSTERING_COLUMNS",
    "MAX_RANGE_PARTITIONS",
    "PARTITION_UNITS",
    "REQUIRED_CONNECTION_KEYS",
    "SECRET_KEYS",
    "SOURCE_TYPES",
    "TABLE_SOURCES",
    "DestinationConfig",
    "FileFormat",
    "FileFormatOptions",
    "JobConfig",
    "LoadType",
    "Partitioning",
    "SourceType",
    "WriteDisposition",
    "config_error_from",
    "needs_cursor",
    "unknown_connection_key_message",
    "unknown_connection_keys",
]
