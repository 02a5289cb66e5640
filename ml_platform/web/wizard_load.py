"""The ETL wizard, steps 4-6: 4 destination (DuckDB file + dataset, or BigQuery project,
dataset, location, credentials, endpoint; "Test destination"), 5 load strategy (cursor, primary
key, NULL-cursor policy, look-back, initial value, bad rows, destination table: refused when
another source owns it, the default made unique), 6 schedule + save (create, or update the
source being edited). Steps 1-3 are `wizard`, the draft helpers `wizard_draft`."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

import etl
from ml_platform import selectors
from ml_platform.models import DataSource
from ml_platform.services import data_source_create, data_source_update
from ml_platform.services.destinations import destination_test
from ml_platform.services.job_config import job_config_build, validation_error_from
from ml_platform.services.ownership import destination_owner_check, destination_table_name_free
from ml_platform.services.schedules import schedule_next_fire_times, schedule_validate
from ml_platform.services.secrets import secret_seal
from ml_platform.web import forms
from ml_platform.web.auth import staff_required
from ml_platform.web.forms_destination import DestinationForm
from ml_platform.web.wizard_draft import (
    DRAFT_FIELDS,
    SESSION_KEY,
    draft_connection,
    draft_destination_credentials,
    draft_from_source,
    draft_get,
    draft_save,
    draft_source,
    draft_step_done,
    step_guard,
    step_render,
)

STRATEGY_HELP = {
    "transactional": "Each run appends only rows whose cursor column is newer than the last "
    "run's maximum (for files: only new or changed files), so nothing is loaded twice.",
    "catalog": "Each run reloads the whole table and swaps it in atomically, so readers always "
    "see a complete snapshot.",
    "merge": "Each run reads what changed since the last run, like transactional, and each "
    "primary key's latest row replaces the destination's row: one row per key.",
}
TABLE_ONLY_FIELDS = (
    "timestamp_column",
    "null_cursor",
    "cursor_lag_seconds",
    "initial_value",
    "parallelism",
)
CURSOR_REQUIRED = "A transactional or merge table load needs a cursor column."


@staff_required
def wizard_destination(request: HttpRequest) -> HttpResponse:
    """Step 4: where the rows go; "Test destination" connects without writing."""
    if (guard := step_guard(request, 4)) is not None:
        return guard
    draft = draft_get(request)
    destination = draft.get("destination") or {}
    initial = {
        "type": "duckdb",
        "dataset": "raw_data",
        **destination,
        **DestinationForm.options_initial(destination),
    }
    given, credentials = draft_destination_credentials(request)
    initial["google_auth"] = (
        "anonymous" if credentials == "anonymous" else "service_account"
        if (credentials or (not given and draft.get("has_destination_key"))) else "adc"
    )  # fmt: skip
    has_key = isinstance(credentials, dict) or (not given and draft.get("has_destination_key"))
    form = DestinationForm(
        request.POST or None,
        request.FILES or None,
        initial=initial,
        has_stored_key=has_key,
        columns=draft.get("dest_columns"),
    )
    test_result = None
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        creds = values["credentials"]
        keep_stored = creds is None and values.get("google_auth") == "service_account"
        if not keep_stored:
            draft_save(request, destination_credentials=secret_seal(creds) if creds else None)
        draft_save(request, destination=values["destination"])
        if request.POST.get("action") == "next":
            draft_step_done(request, 4)
            return redirect("web:wizard-strategy")
        connection = draft_connection(request)
        test_result = destination_test(
            data_source=draft_source(request, connection, load_type="catalog")
        )
    return step_render(
        request,
        4,
        "destination",
        form=form,
        test_result=test_result,
        columns_known=bool(draft.get("dest_columns")),
    )


def default_table_base(draft: dict[str, Any]) -> str:
    """A destination table name from the source: the table's name, else the last part of the
    file prefix + pattern that is a name once glob characters and extensions are dropped
    (`exports/*.csv` -> `exports`), else `files`; lower case, letters, digits, underscores."""
    if draft.get("source_table_name"):
        parts = [draft["source_table_name"].rpartition(".")[2]]
    else:
        parts = f"{draft.get('file_prefix') or ''}/{draft.get('file_pattern') or ''}".split("/")
    for part in reversed(parts):
        name = re.sub(r"[^a-z0-9_]+", "_", part.split(".")[0].lower()).strip("_")
        if name:
            return f"t_{name}" if name[0].isdigit() else name
    return "files"


INITIAL_VALUE_INVALID = (
    "initial_value {value!r} is not a {kind} value of the cursor column ({arrow_type}); "
    "use {example}."
)


def initial_value_error(value: str, arrow_type: str) -> str | None:
    """Why `value` cannot start a cursor of Arrow type `arrow_type` (None when it can, or the
    type is unknown): timestamps and dates take ISO 8601, numbers a number."""
    if not value or not arrow_type:
        return None
    if arrow_type.startswith(("timestamp", "date")):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return None
        except ValueError:
            kind, example = "date/time", "ISO 8601, e.g. 2024-03-02T00:00:00Z"
    else:
        try:
            if math.isfinite(float(value)):
                return None
        except ValueError:
            pass
        kind, example = "numeric", "a finite number, e.g. 1000"
    return INITIAL_VALUE_INVALID.format(
        value=value, kind=kind, arrow_type=arrow_type, example=example
    )


@staff_required
def wizard_strategy(request: HttpRequest) -> HttpResponse:
    """Step 5: transactional (cursor, key, NULLs, look-back, initial value) or catalog; bad-row
    handling; the destination table (checked for an owner and against the contract)."""
    if (guard := step_guard(request, 5)) is not None:
        return guard
    connection = draft_connection(request)
    draft = draft_get(request)
    is_files = connection.type in etl.FILE_SOURCES
    initial = {
        "load_type": "transactional",
        "null_cursor": "fail",
        "on_bad_rows": "fail",
        "cursor_lag_seconds": 0,
        **{k: v for k, v in draft.items() if v not in (None, "")},
    }
    if not draft.get("dest_table_name"):
        base = default_table_base(draft)
        initial["dest_table_name"] = destination_table_name_free(
            data_source=draft_source(request, connection), base=base
        )
    form = forms.StrategyForm(
        request.POST or None,
        initial=initial,
        cursor_choices=draft.get("cursor_choices", []),
        column_choices=draft.get("column_choices", []),
    )
    if is_files:  # no cursor: these would be hidden and their errors unseen
        for name in TABLE_ONLY_FIELDS:
            del form.fields[name]
    other_errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = {"timestamp_column": "", **form.cleaned_data}
        if data["load_type"] == "catalog":
            data["timestamp_column"] = ""
        cursor_type = (draft.get("cursor_types") or {}).get(data["timestamp_column"], "")
        initial_error = initial_value_error(data.get("initial_value") or "", cursor_type)
        needs_cursor = etl.needs_cursor(connection.type, data["load_type"])
        if needs_cursor and not data["timestamp_column"]:
            form.add_error("timestamp_column", CURSOR_REQUIRED)
        elif initial_error:
            form.add_error("initial_value", initial_error)
        else:
            source = draft_source(request, connection, **data)
            try:
                destination_owner_check(data_source=source)
                try:
                    job_config_build(data_source=source)
                except etl.ConfigError as exc:
                    raise validation_error_from(exc) from exc
            except ValidationError as exc:
                other_errors = forms.errors_flatten(forms.form_add_errors(form, exc))
            else:
                draft_save(request, **data)
                draft_step_done(request, 5)
                return redirect("web:wizard-schedule")
    return step_render(
        request, 5, "strategy", form=form, is_files=is_files, strategy_help=STRATEGY_HELP,
        other_errors=other_errors,
    )  # fmt: skip


@staff_required
def wizard_schedule(request: HttpRequest) -> HttpResponse:
    """Step 6: name and optional schedule (next fire times shown); save the data source."""
    if (guard := step_guard(request, 6)) is not None:
        return guard
    connection = draft_connection(request)
    draft = draft_get(request)
    initial = {"schedule_timezone": "UTC", "name": draft.get("dest_table_name", ""), **draft}
    form = forms.ScheduleForm(request.POST or None, initial=initial)
    other_errors: dict[str, list[str]] = {}
    fire_times: list[Any] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            # the BigQuery job budget is checked on preview too, with its numbers
            schedule_validate(
                cron=data["schedule_cron"],
                timezone=data["schedule_timezone"],
                destination_type=(draft.get("destination") or {}).get("type"),
            )
            fire_times = schedule_next_fire_times(
                cron=data["schedule_cron"], timezone=data["schedule_timezone"]
            )
            if request.POST.get("action") == "save":
                draft_save(request, **data)
                source = _save(request, connection)
                request.session.pop(SESSION_KEY, None)
                return redirect("web:source-detail", source_id=source.pk)
        except ValidationError as exc:
            other_errors = forms.form_add_errors(form, exc)
    return step_render(
        request, 6, "schedule", form=form, other_errors=other_errors, fire_times=fire_times,
        connection=connection,
    )  # fmt: skip


def _save(request: HttpRequest, connection: Any) -> DataSource:
    draft = draft_get(request)
    values = {key: draft[key] for key in DRAFT_FIELDS if key in draft}
    is_files = connection.type in etl.FILE_SOURCES
    if is_files:
        values.update(source_table_name="", custom_sql="")
    else:
        values.update(file_format="", file_format_options={})
    given, credentials = draft_destination_credentials(request)
    editing = draft.get("editing_id")
    if editing:
        source = selectors.data_source_get(id=editing)
        return data_source_update(
            data_source=source,
            data={**values, "connection": connection},
            destination_credentials=credentials if given and credentials is not None else None,
            clear_destination_credentials=given and credentials is None,
        )
    values = {k: v for k, v in values.items() if v is not None}
    return data_source_create(**values, connection=connection, destination_credentials=credentials)


@staff_required
def source_edit(request: HttpRequest, source_id: int) -> HttpResponse:
    """Open the wizard on an existing source: every step prefilled; step 6 saves the changes."""
    try:
        source = selectors.data_source_get(id=source_id)
    except DataSource.DoesNotExist:
        raise Http404(f"No data source {source_id}.") from None
    draft = draft_from_source(source)
    columns = [*source.selected_columns, *source.primary_key]
    draft["cursor_choices"] = [source.timestamp_column] if source.timestamp_column else []
    draft["column_choices"] = list(dict.fromkeys(columns))
    request.session[SESSION_KEY] = draft
    return redirect("web:wizard-connection")
