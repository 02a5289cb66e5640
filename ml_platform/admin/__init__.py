"""Admin for every model. Secrets are write-only: forms take new values in fields that never
render a stored value, and no list or detail page shows them (`admin.forms`). Writes go through
services; runs, state and the file ledger are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

import etl
from ml_platform import services
from ml_platform.admin.forms import (
    PASSWORD_NOT_TAKEN,
    SECRET_HELP,
    ConnectionForm,
    DataSourceForm,
    ServiceModelForm,
)
from ml_platform.models import (
    Connection,
    DataSource,
    DataSourceState,
    EtlRun,
    EtlRunChunk,
    ProcessedFile,
)


class _ServiceModelAdmin(admin.ModelAdmin):
    """Saves through the form's `service_save`, never `obj.save()` (STYLE.md R3)."""

    def save_model(
        self, request: HttpRequest, obj: Any, form: ServiceModelForm, change: bool
    ) -> None:
        saved = form.service_save(
            instance=obj if change else None,
            data=form.service_data(),
            secret=form.secret_input(),
            clear=form.cleaned_data[f"clear_{form.secret_field}"],
        )
        obj.pk = saved.pk


@admin.register(Connection)
class ConnectionAdmin(_ServiceModelAdmin):
    form = ConnectionForm
    list_display = [
        "name",
        "type",
        "host",
        "database",
        "bucket",
        "container",
        "base_path",
        "max_readers",
        "has_credentials",
        "updated_at",
    ]
    list_filter = ["type"]
    search_fields = ["name", "host", "database", "bucket", "container"]

    @admin.display(boolean=True, description="credentials")
    def has_credentials(self, obj: Connection) -> bool:
        return bool(obj.credentials)


@admin.register(DataSource)
class DataSourceAdmin(_ServiceModelAdmin):
    form = DataSourceForm
    list_display = [
        "name",
        "connection",
        "load_type",
        "dest_table_name",
        "parallelism",
        "enabled",
        "schedule_cron",
        "updated_at",
    ]
    list_filter = ["load_type", "enabled", "connection__type"]
    search_fields = ["name", "dest_table_name", "source_table_name"]
    list_select_related = ["connection"]
    actions = ["run_now"]

    @admin.action(description="Run now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[DataSource]) -> None:
        for data_source in queryset:
            try:
                run = services.etl_run_enqueue(
                    data_source=data_source, trigger=EtlRun.Trigger.MANUAL
                )
            except etl.EtlError as exc:
                # eager Celery (one machine) runs the task inside this request; the run is
                # already recorded as failed
                self.message_user(
                    request, f"{data_source.name}: {type(exc).__name__}", level=messages.ERROR
                )
                continue
            self.message_user(request, f"{data_source.name}: run {run.id} ({run.status})")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(EtlRun)
class EtlRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "data_source",
        "trigger",
        "status",
        "queued_at",
        "duration_s",
        "rows_extracted",
        "rows_loaded",
        "bytes_extracted",
        "files_loaded",
        "error_class",
    ]
    list_filter = ["status", "trigger"]
    search_fields = ["data_source__name", "idempotency_key", "error_class"]
    list_select_related = ["data_source"]
    date_hierarchy = "queued_at"


@admin.register(EtlRunChunk)
class EtlRunChunkAdmin(ReadOnlyAdmin):
    list_display = [
        "run",
        "index",
        "status",
        "attempt",
        "worker",
        "heartbeat_at",
        "waited_s",
        "rows",
        "error_class",
    ]
    list_filter = ["status"]
    search_fields = ["run__data_source__name", "worker", "error_class"]
    list_select_related = ["run"]


@admin.register(DataSourceState)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = ["data_source", "watermark_value", "watermark_type", "last_run_id", "updated_at"]
    list_select_related = ["data_source"]


@admin.register(ProcessedFile)
class ProcessedFileAdmin(ReadOnlyAdmin):
    list_display = [
        "path",
        "data_source",
        "status",
        "rows",
        "size",
        "version",
        "last_modified",
        "run",
    ]
    list_filter = ["status"]
    search_fields = ["path", "data_source__name"]
    list_select_related = ["data_source", "run"]


__all__ = ["PASSWORD_NOT_TAKEN", "SECRET_HELP", "ConnectionForm", "DataSourceForm"]
