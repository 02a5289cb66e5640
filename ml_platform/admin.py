"""Admin for every model. Secrets are write-only: forms take new values in fields that never
render a stored value, and no list or detail page shows them. Writes go through services;
runs, state and the file ledger are read-only."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

import etl
from ml_platform import services
from ml_platform.models import Connection, DataSource, EtlRun, ProcessedFile, SyncState

SECRET_HELP = "Write-only: the stored value is never shown. Leave blank to keep it."


def _json_object_or_string(value: str, *, field: str) -> Any:
    value = value.strip()
    if not value:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if field == "destination_credentials":
            return value  # e.g. "anonymous"
        raise ValidationError("Enter a JSON object.") from None


class ConnectionForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=SECRET_HELP,
        label="Password / secret key",
    )
    new_credentials = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            SECRET_HELP + ' JSON object, e.g. {"aws_secret_access_key": "..."} or '
            '{"credentials": {...service account...}}.'
        ),
        label="Credentials (JSON)",
    )
    clear_credentials = forms.BooleanField(required=False, help_text="Remove stored credentials.")

    class Meta:
        model = Connection
        fields = [
            "name",
            "type",
            "host",
            "port",
            "database",
            "user",
            "bucket",
            "container",
            "base_path",
            "project",
            "endpoint_url",
            "extra_params",
        ]

    def clean_new_credentials(self) -> Any:
        return _json_object_or_string(self.cleaned_data["new_credentials"], field="credentials")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            for field in self.Meta.fields:
                setattr(self.instance, field, cleaned.get(field))
            try:
                services.connection_validate(connection=self.instance)
            except ValidationError as exc:
                self._update_errors(exc)
        return cleaned

    def credentials_input(self) -> dict[str, Any] | None:
        """Return the credentials object to store, or None to keep the stored one."""
        credentials = self.cleaned_data.get("new_credentials")
        password = self.cleaned_data.get("password")
        if credentials is None and not password:
            return None
        merged = dict(credentials or {})
        if password:
            key = {"s3": "aws_secret_access_key", "azure_blob": "account_key"}.get(
                self.cleaned_data.get("type"), "password"
            )
            merged[key] = password
        return merged


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = [
        "name",
        "type",
        "host",
        "database",
        "bucket",
        "container",
        "base_path",
        "has_credentials",
        "updated_at",
    ]
    list_filter = ["type"]
    search_fields = ["name", "host", "database", "bucket", "container"]

    @admin.display(boolean=True, description="credentials")
    def has_credentials(self, obj: Connection) -> bool:
        return bool(obj.credentials)

    def save_model(
        self, request: HttpRequest, obj: Connection, form: ConnectionForm, change: bool
    ) -> None:
        data = {field: form.cleaned_data[field] for field in ConnectionForm.Meta.fields}
        credentials = form.credentials_input()
        if change:
            services.connection_update(
                connection=obj,
                data=data,
                credentials=credentials,
                clear_credentials=form.cleaned_data["clear_credentials"],
            )
        else:
            created = services.connection_create(**data, credentials=credentials)
            obj.pk = created.pk


class DataSourceForm(forms.ModelForm):
    new_destination_credentials = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=SECRET_HELP + ' BigQuery service-account JSON, or "anonymous" (emulator).',
        label="Destination credentials",
    )
    clear_destination_credentials = forms.BooleanField(required=False)

    class Meta:
        model = DataSource
        exclude = ["destination_credentials"]

    def clean_new_destination_credentials(self) -> Any:
        return _json_object_or_string(
            self.cleaned_data["new_destination_credentials"], field="destination_credentials"
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # contract errors (JobConfig) are shown on the form, next to the field they name
        instance = self.instance
        for field in services.data_sources.UPDATABLE_FIELDS:
            if field in cleaned:
                setattr(instance, field, cleaned[field])
        try:
            services.data_source_validate(data_source=instance)
        except ValidationError as exc:
            self._update_errors(exc)
        return cleaned


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    form = DataSourceForm
    list_display = [
        "name",
        "connection",
        "load_type",
        "dest_table_name",
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

    def save_model(
        self, request: HttpRequest, obj: DataSource, form: DataSourceForm, change: bool
    ) -> None:
        data = {
            f: form.cleaned_data[f]
            for f in services.data_sources.UPDATABLE_FIELDS
            if f in form.cleaned_data
        }
        credentials = form.cleaned_data.get("new_destination_credentials")
        if change:
            services.data_source_update(
                data_source=obj,
                data=data,
                destination_credentials=credentials,
                clear_destination_credentials=form.cleaned_data["clear_destination_credentials"],
            )
        else:
            created = services.data_source_create(**data, destination_credentials=credentials)
            obj.pk = created.pk


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


@admin.register(SyncState)
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
