"""Forms of the ETL wizard: input shapes only; every write goes through a service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from ml_platform.models import DataSource, SourceType

CONNECTION_FIELDS = ("name", "type", "host", "port", "database", "user", "base_path", "bucket")


class ConnectionChooseForm(forms.Form):
    connection = forms.TypedChoiceField(coerce=int, label="Connection", required=False)

    def __init__(self, *args: Any, connections: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].choices = [("", "— choose —")] + [
            (c.id, str(c)) for c in connections
        ]


class ConnectionCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    type = forms.ChoiceField(choices=SourceType.choices)
    host = forms.CharField(required=False)
    port = forms.IntegerField(required=False, min_value=1, max_value=65535)
    database = forms.CharField(required=False)
    user = forms.CharField(required=False)
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    base_path = forms.CharField(required=False, label="Base path (local files)")
    bucket = forms.CharField(required=False, label="Bucket / container")


class TableForm(forms.Form):
    """Step 2 for databases: one table, or a custom SQL query."""

    source_table_name = forms.CharField(required=False, label="Table")
    custom_sql = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("source_table_name") and not data.get("custom_sql"):
            raise ValidationError({"source_table_name": "Choose a table or write a SQL query."})
        return data


class FilesForm(forms.Form):
    """Step 2 for file stores: a folder prefix and a glob pattern."""

    file_prefix = forms.CharField(required=False, label="Folder prefix")
    file_pattern = forms.CharField(initial="*.csv", label="File pattern")
    file_format = forms.ChoiceField(choices=DataSource.FileFormat.choices)


class StrategyForm(forms.Form):
    load_type = forms.ChoiceField(
        choices=DataSource.LoadType.choices, widget=forms.RadioSelect, label="Load strategy"
    )
    timestamp_column = forms.ChoiceField(required=False, label="Cursor column")
    primary_key = forms.CharField(
        required=False,
        label="Primary key",
        help_text="Comma-separated column names; required by the merge strategy.",
    )
    dest_table_name = forms.CharField(max_length=300, label="Destination table")

    def __init__(self, *args: Any, cursor_choices: list[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timestamp_column"].choices = [("", "— choose —")] + [
            (name, name) for name in cursor_choices
        ]


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=200, label="Data source name")
    schedule_cron = forms.CharField(
        required=False, label="Schedule (cron)", help_text="minute hour day month weekday"
    )
    schedule_timezone = forms.CharField(initial="UTC", label="Time zone")


def form_add_errors(form: forms.Form, error: ValidationError) -> dict[str, list[str]]:
    """Attach a service `ValidationError` to the form's fields; return the errors about fields
    the form does not have (they belong to earlier steps)."""
    others: dict[str, list[str]] = {}
    for field, messages in getattr(error, "message_dict", {"__all__": error.messages}).items():
        if field in form.fields:
            for message in messages:
                form.add_error(field, message)
        else:
            others.setdefault(field, []).extend(messages)
    return others
