"""The wizard's destination form (step 4): the embedded DuckDB file or a BigQuery dataset,
with its credentials and table options, checked against the engine's `DestinationConfig`."""

from __future__ import annotations

from typing import Any

import pydantic
from django import forms
from django.core.exceptions import ValidationError

import etl
from ml_platform.web.forms import pydantic_errors_add
from ml_platform.web.forms_service_account import GOOGLE_AUTH, service_account_from
from ml_platform.web.forms_table_options import TableOptionsFields


class DestinationForm(TableOptionsFields):
    """Step 4: the embedded DuckDB file or a BigQuery dataset, with the BigQuery table options
    (`TableOptionsFields`; `columns=` gives their column choices)."""

    type = forms.ChoiceField(
        choices=[("duckdb", "DuckDB (embedded)"), ("bigquery", "BigQuery")],
        widget=forms.RadioSelect(attrs={"data-type-switch": "1"}),
        initial="duckdb",
        label="Destination",
    )
    path = forms.CharField(
        required=False,
        max_length=1024,
        label="DuckDB file",
        help_text="blank: the default warehouse; a relative path is under var/",
    )
    dataset = forms.CharField(initial="raw_data", max_length=1024, label="Dataset / schema")
    project = forms.CharField(required=False, max_length=128, label="BigQuery project")
    location = forms.CharField(required=False, max_length=64, help_text="e.g. EU, US, europe-west1")
    api_endpoint = forms.URLField(
        assume_scheme="http",
        required=False,
        max_length=1024,
        label="API endpoint",
        help_text="only for an emulator",
    )
    google_auth = forms.ChoiceField(
        choices=GOOGLE_AUTH, required=False, widget=forms.RadioSelect, label="Credentials"
    )
    service_account_file = forms.FileField(required=False, label="Service-account JSON file")
    service_account_json = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        label="…or paste the service-account JSON",
    )

    BIGQUERY_FIELDS = ("project", "location", "api_endpoint", "google_auth",
                       "service_account_file", "service_account_json")  # fmt: skip

    def __init__(self, *args: Any, has_stored_key: bool = False, **kwargs: Any) -> None:
        self.has_stored_key = has_stored_key
        super().__init__(*args, **kwargs)
        if has_stored_key:
            self.fields["service_account_file"].help_text = "Leave blank to keep the stored key."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        destination: dict[str, Any] = {"type": data["type"], "dataset": data["dataset"]}
        credentials: Any = None
        options: dict[str, Any] = {}
        if data["type"] == "duckdb":
            if data.get("path"):
                destination["path"] = data["path"]
        else:
            if not data.get("project"):
                self.add_error("project", "Required for a BigQuery destination.")
            destination["project"] = data.get("project") or None
            options = self.options_clean(data)  # checked on their own, errors by their fields
            for name in ("location", "api_endpoint"):
                if data.get(name):
                    destination[name] = data[name]
            auth = data.get("google_auth") or "adc"
            if auth == "anonymous":
                credentials = "anonymous"
            elif auth == "service_account":
                try:
                    credentials = service_account_from(data)
                except ValidationError as exc:
                    for field, messages in exc.message_dict.items():
                        self.add_error(field, messages)
                    return data
                if credentials is None and not self.has_stored_key:
                    self.add_error(
                        "service_account_file", "Upload or paste a service-account JSON key."
                    )
        try:
            etl.DestinationConfig(**{k: v for k, v in destination.items() if v is not None})
        except pydantic.ValidationError as exc:
            pydantic_errors_add(self, exc)
        data["destination"] = {**destination, **options}
        data["credentials"] = credentials
        return data
