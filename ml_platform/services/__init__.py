"""Every write of the control plane (shared/STYLE.md R2), one module per entity."""

from ml_platform.services.connections import (
    connection_create,
    connection_delete,
    connection_params_build,
    connection_update,
    connection_validate,
    credentials_read,
)
from ml_platform.services.data_sources import (
    data_source_create,
    data_source_delete,
    data_source_update,
    data_source_validate,
)
from ml_platform.services.job_config import job_config_build, job_config_data
from ml_platform.services.runs import etl_run_create, etl_run_enqueue
from ml_platform.services.runs_execute import etl_run_execute
from ml_platform.services.runs_finish import etl_run_fail
from ml_platform.services.runs_reap import etl_run_reap_stale
from ml_platform.services.state import sync_state_get_engine, sync_state_save

__all__ = [
    "connection_create",
    "connection_delete",
    "connection_params_build",
    "connection_update",
    "connection_validate",
    "credentials_read",
    "data_source_create",
    "data_source_delete",
    "data_source_update",
    "data_source_validate",
    "etl_run_create",
    "etl_run_enqueue",
    "etl_run_execute",
    "etl_run_fail",
    "etl_run_reap_stale",
    "job_config_build",
    "job_config_data",
    "sync_state_get_engine",
    "sync_state_save",
]
