"""Forms of the ETL wizard: input shapes and per-field checks; every write goes through a
service. The connection form is `forms_connection`, the destination form `forms_destination`."""

from __future__ import annotations

from typing import Any

import pydantic
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

import etl
from ml_platform.contract import form_field, help_text, label
from ml_platform.models import DataSource

CHOOSE = "Choose a connection or create one below."
MAX_LOOK_BACK_S = 366 * 24 * 3600.0
"""Largest look-back the wizard accepts (one year, seconds)."""


def model_field(name: str, **kwargs: Any) -> forms.Field:
    """The form field of `DataSource` field `name` (type, label, help text, choices, length,
    default from the model, the one definition); `kwargs` adapt it to the wizard's step."""
    return form_field(DataSource, name, **kwargs)


class ConnectionChooseForm(forms.Form):
    connection = forms.TypedChoiceField(
        coerce=int, label="Connection", required=False, empty_value=None
    )

    def __init__(self, *args: Any, connections: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].choices = [("", "— choose —")] + [
            (c.id, str(c)) for c in connections
        ]


class TableForm(forms.Form):
    """Step 2 for databases: one table, or a custom SQL query."""

    source_table_name = model_field("source_table_name")
    custom_sql = model_field("custom_sql", widget=forms.Textarea(attrs={"rows": 4}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("source_table_name") and not data.get("custom_sql"):
            raise ValidationError({"source_table_name": "Choose a table or write a SQL query."})
        return data


def _escape(value: str) -> str:
    """`\\t` typed as two characters means a tab."""
    return "\t" if value == "\\t" else value


class FilesForm(forms.Form):
    """Step 2 for file stores: a folder prefix, a glob pattern, the format and its options."""

    file_prefix = model_field("file_prefix")
    file_pattern = model_field("file_pattern", required=True, initial="*.csv")
    file_format = forms.ChoiceField(
        choices=DataSource.FileFormat.choices,
        widget=forms.Select(attrs={"data-type-switch": "1"}),
        label=label(DataSource, "file_format"),
    )
    delimiter = forms.CharField(
        required=False, initial=",", max_length=2, strip=False, help_text="CSV; \\t for a tab"
    )
    encoding = forms.CharField(required=False, initial="utf-8", max_length=40)
    has_header = forms.BooleanField(required=False, initial=True, label="First line is a header")
    quote_char = forms.CharField(required=False, initial='"', max_length=1, strip=False)
    escape_char = forms.CharField(
        required=False, max_length=1, strip=False, help_text="blank: quotes are doubled"
    )
    null_values = forms.CharField(
        required=False,
        initial="NULL,null,\\N",  # etl.FileFormatOptions' defaults (no `NA`: docs/config.md)
        label="NULL markers",
        help_text="comma-separated; an empty field is always NULL",
    )
    skip_rows = forms.IntegerField(required=False, initial=0, min_value=0, max_value=1_000_000)
    allow_quoted_newlines = forms.BooleanField(
        required=False,
        initial=True,  # the config contract's default (etl.FileFormatOptions)
        label="Quoted fields may span lines",
    )

    OPTION_FIELDS = ("delimiter", "encoding", "has_header", "quote_char", "escape_char",
                     "null_values", "skip_rows", "allow_quoted_newlines")  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors or "file_format" not in data:
            return data
        options = self._options(data)
        try:
            etl.FileFormatOptions(**options)
        except pydantic.ValidationError as exc:
            pydantic_errors_add(self, exc)
        data["file_format_options"] = options
        return data

    @staticmethod
    def _options(data: dict[str, Any]) -> dict[str, Any]:
        kind = data["file_format"]
        if kind == "parquet":
            return {}
        options: dict[str, Any] = {"encoding": data.get("encoding") or "utf-8"}
        if kind != "csv":
            return options
        markers = [v.strip() for v in (data.get("null_values") or "").split(",") if v.strip()]
        options.update(
            delimiter=_escape(data.get("delimiter") or ","),
            has_header=bool(data.get("has_header")),
            quote_char=data.get("quote_char") or '"',
            escape_char=data.get("escape_char") or None,
            null_values=["", *markers],
            skip_rows=data.get("skip_rows") or 0,
            allow_quoted_newlines=bool(data.get("allow_quoted_newlines")),
        )
        return options

    @classmethod
    def options_kept(
        cls, options: dict[str, Any], draft: dict[str, Any], file_format: str
    ) -> dict[str, Any]:
        """Return `options` (from this form) plus the draft's options this form does not show
        (`decimal_point`, `column_types`, `catalog_files`, ... set through the API or the
        admin), when the format is unchanged: editing a source in the wizard never drops
        what it cannot display."""
        if draft.get("file_format") != file_format:
            return options
        shown = {*cls.OPTION_FIELDS, "encoding"}
        hidden = {
            key: value
            for key, value in (draft.get("file_format_options") or {}).items()
            if key not in shown
        }
        return {**hidden, **options}

    @classmethod
    def initial_from(cls, draft: dict[str, Any]) -> dict[str, Any]:
        """Form values of a draft's `file_format_options` (edit, back)."""
        options = draft.get("file_format_options") or {}
        initial = {k: v for k, v in draft.items() if k in ("file_prefix", "file_pattern",
                                                            "file_format")}  # fmt: skip
        for name in cls.OPTION_FIELDS:
            if name in options and options[name] is not None:
                initial[name] = options[name]
        if "null_values" in options:
            initial["null_values"] = ",".join(v for v in options["null_values"] if v)
        if initial.get("delimiter") == "\t":
            initial["delimiter"] = "\\t"
        return initial


class StrategyForm(forms.Form):
    load_type = model_field("load_type", widget=forms.RadioSelect(attrs={"data-type-switch": "1"}))
    # choices known once the preview ran: the columns of cursor types, every column
    timestamp_column = forms.ChoiceField(
        required=False, label=label(DataSource, "timestamp_column")
    )
    primary_key = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=label(DataSource, "primary_key"),
        help_text=help_text(DataSource, "primary_key"),
    )
    null_cursor = model_field("null_cursor", required=False)
    cursor_lag_seconds = model_field(
        "cursor_lag_seconds", required=False, min_value=0, max_value=MAX_LOOK_BACK_S
    )
    initial_value = model_field("initial_value")
    on_bad_rows = model_field("on_bad_rows")
    parallelism = model_field("parallelism", required=False)
    dest_table_name = model_field("dest_table_name")

    def __init__(
        self, *args: Any, cursor_choices: Any = (), column_choices: Any = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timestamp_column"].choices = [("", "— choose —")] + [
            (name, name) for name in cursor_choices
        ]
        self.fields["primary_key"].choices = [(name, name) for name in column_choices]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "null_cursor" in self.fields:
            data["null_cursor"] = data.get("null_cursor") or DataSource.NullCursor.FAIL
        if "cursor_lag_seconds" in self.fields and data.get("cursor_lag_seconds") is None:
            if "cursor_lag_seconds" not in self.errors:
                data["cursor_lag_seconds"] = 0.0
        if "parallelism" in self.fields and data.get("parallelism") is None:
            if "parallelism" not in self.errors:
                data["parallelism"] = 1
        return data


class ScheduleForm(forms.Form):
    name = model_field("name")
    description = model_field("description", widget=forms.Textarea(attrs={"rows": 2}))
    schedule_cron = model_field("schedule_cron")
    schedule_timezone = model_field("schedule_timezone")
    alert_emails = model_field("alert_emails")
    alert_webhook_url = forms.URLField(  # a URL field: `hooks.slack.com/...` gets its https://
        required=False,
        max_length=1024,
        assume_scheme="https",
        label=label(DataSource, "alert_webhook_url"),
        help_text=help_text(DataSource, "alert_webhook_url"),
    )

    def clean_alert_emails(self) -> str:
        from django.core.validators import validate_email

        emails = [e.strip() for e in self.cleaned_data["alert_emails"].split(",") if e.strip()]
        for email in emails:
            try:
                validate_email(email)
            except ValidationError:
                raise ValidationError(f"{email!r} is not an email address.") from None
        return ", ".join(emails)


def pydantic_errors_add(form: forms.Form, exc: pydantic.ValidationError) -> None:
    """Attach the engine's config errors to the form field of the same name (else the form)."""
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else NON_FIELD_ERRORS
        message = str(error["msg"]).removeprefix("Value error, ")
        form.add_error(field if field in form.fields else None, message)


def errors_flatten(errors: dict[str, list[str]]) -> list[str]:
    """Return `{field: [message, ...]}` as `["field: message", ...]`, for errors shown above a
    form (about fields it does not have)."""
    return [f"{field}: {message}" for field, messages in errors.items() for message in messages]


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
