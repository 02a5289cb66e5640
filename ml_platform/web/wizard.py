"""The 5-step ETL wizard: 1 connection, 2 table / files, 3 preview + columns, 4 load strategy,
5 schedule + save. The draft lives in the session; each step calls services and shows their
errors next to the fields (a `ValidationError`) or above the form (an `ApplicationError`)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from etl.config import FILE_SOURCES
from ml_platform import selectors
from ml_platform.exceptions import ApplicationError
from ml_platform.models import Connection, DataSource
from ml_platform.services import connection_create, data_source_create, probes
from ml_platform.services.preview import data_source_preview
from ml_platform.services.schedules import schedule_next_fire_times
from ml_platform.web import forms
from ml_platform.web.auth import staff_required

SESSION_KEY = "etl_wizard"
PREVIEW_ROWS = 20
CURSOR_TYPE_PREFIXES = ("timestamp", "date", "int", "uint", "float", "double", "decimal")
"""Arrow types a transactional cursor may have: timestamps and numbers."""
STEPS = ["Connection", "Table or files", "Preview & columns", "Load strategy", "Schedule & save"]
STRATEGY_HELP = {
    "transactional": "Each run appends only rows whose cursor column is newer than the last "
    "run's maximum (for files: only new or changed files), so nothing is loaded twice.",
    "catalog": "Each run reloads the whole table and swaps it in atomically, so readers always "
    "see a complete snapshot.",
    "merge": "Each run reads what changed since the last run, like transactional, and each "
    "primary key's latest row replaces the destination's row: one row per key.",
}


def _draft(request: HttpRequest) -> dict[str, Any]:
    return request.session.setdefault(SESSION_KEY, {})


def _save(request: HttpRequest, **values: Any) -> None:
    request.session[SESSION_KEY] = {**_draft(request), **values}


def _connection(request: HttpRequest) -> Connection | None:
    connection_id = _draft(request).get("connection_id")
    return Connection.objects.filter(pk=connection_id).first() if connection_id else None


def _render(request: HttpRequest, step: int, template: str, **context: Any) -> HttpResponse:
    context.update(step=step, steps=STEPS, draft=_draft(request))
    return render(request, f"web/wizard_{template}.html", context)


@staff_required
def wizard_start(request: HttpRequest) -> HttpResponse:
    request.session[SESSION_KEY] = {}
    return redirect("web:wizard-connection")


@staff_required
def wizard_connection(request: HttpRequest) -> HttpResponse:
    """Step 1: choose a connection or create one; test it."""
    connections = selectors.connection_list()
    current = _connection(request)
    choose = forms.ConnectionChooseForm(
        request.POST or None,
        connections=connections,
        initial={"connection": current.pk if current else None},
        prefix="choose",
    )
    create = forms.ConnectionCreateForm(
        request.POST if request.POST.get("action") == "create" else None, prefix="new"
    )
    test_result = None
    action = request.POST.get("action")
    if action == "create" and create.is_valid():
        data = {k: v for k, v in create.cleaned_data.items() if k != "password"}
        bucket = data.pop("bucket")
        if data["type"] == "azure_blob":
            data["container"] = bucket
        else:
            data["bucket"] = bucket
        password = create.cleaned_data["password"]
        try:
            current = connection_create(
                **data, credentials={"password": password} if password else None
            )
        except ValidationError as exc:
            forms.form_add_errors(create, exc)
        else:
            _save(request, connection_id=current.pk)
            return redirect("web:wizard-connection")
    elif action in ("test", "next") and choose.is_valid():
        chosen = connections.filter(pk=choose.cleaned_data["connection"]).first()
        if chosen is None:
            choose.add_error("connection", "Choose a connection or create one below.")
        else:
            _save(request, connection_id=chosen.pk)
            current = chosen
            if action == "next":
                return redirect("web:wizard-source")
            test_result = probes.connection_test(connection=chosen)
    return _render(
        request, 1, "connection", choose=choose, create=create, test_result=test_result,
        current=current,
    )  # fmt: skip


@staff_required
def wizard_source(request: HttpRequest) -> HttpResponse:
    """Step 2: a table or custom SQL; or a prefix + pattern with the matching files listed."""
    connection = _connection(request)
    if connection is None:
        return redirect("web:wizard-connection")
    draft, context = _draft(request), {"connection": connection, "error": None}
    is_files = connection.type in FILE_SOURCES
    form_class = forms.FilesForm if is_files else forms.TableForm
    form = form_class(request.POST or None, initial=draft)
    try:
        if is_files:
            if form.is_valid():
                context["files"] = probes.connection_browse_files(
                    connection=connection,
                    prefix=form.cleaned_data["file_prefix"],
                    pattern=form.cleaned_data["file_pattern"],
                )
        else:
            schemas = probes.connection_browse_schemas(connection=connection)
            schema = request.GET.get("schema") or draft.get("schema") or ""
            if not schema and "public" in schemas:
                schema = "public"
            context.update(schemas=schemas, schema=schema)
            context["tables"] = probes.connection_browse_tables(
                connection=connection, schema=schema or None
            )
    except ApplicationError as exc:
        context["error"] = exc.message
    if request.method == "POST" and form.is_valid() and context["error"] is None:
        values = dict(form.cleaned_data)
        if not is_files:
            values["schema"] = context.get("schema", "")
        if request.POST.get("action") == "next" and (not is_files or context["files"]["files"]):
            _save(request, **values, selected_columns=[])
            return redirect("web:wizard-preview")
        if is_files and not context["files"]["files"]:
            form.add_error("file_pattern", "No file matches this prefix and pattern.")
    return _render(request, 2, "source", form=form, is_files=is_files, **context)


def _draft_source(request: HttpRequest, connection: Connection, **overrides: Any) -> DataSource:
    draft = {**_draft(request), **overrides}
    return DataSource(
        name=draft.get("name") or "draft",
        connection=connection,
        dest_table_name=draft.get("dest_table_name") or "draft",
        load_type=draft.get("load_type") or DataSource.LoadType.CATALOG,
        selected_columns=draft.get("selected_columns") or [],
        source_table_name=draft.get("source_table_name", ""),
        custom_sql=draft.get("custom_sql", ""),
        timestamp_column=draft.get("timestamp_column", ""),
        file_prefix=draft.get("file_prefix", ""),
        file_pattern=draft.get("file_pattern") or "*",
        file_format=draft.get("file_format", ""),
        schedule_cron=draft.get("schedule_cron", ""),
        schedule_timezone=draft.get("schedule_timezone") or "UTC",
    )


@staff_required
def wizard_preview(request: HttpRequest) -> HttpResponse:
    """Step 3: sample rows with destination names and types; choose the columns."""
    connection = _connection(request)
    if connection is None:
        return redirect("web:wizard-connection")
    error, preview = None, {"columns": [], "rows": []}
    draft_source = _draft_source(request, connection, load_type="catalog", selected_columns=[])
    try:
        preview = data_source_preview(data_source=draft_source, limit=PREVIEW_ROWS)
    except ApplicationError as exc:
        error = exc.message
    columns = preview["columns"]
    for column in columns:  # added by the engine (e.g. `_etl_source_file`), always loaded
        column["system"] = column["source_name"].startswith("_etl_")
    choosable = [c for c in columns if not c["system"]]
    if request.method == "POST" and error is None:
        chosen = request.POST.getlist("columns")
        if not chosen:
            error = "Select at least one column."
        else:
            cursors = [c["source_name"] for c in choosable if _is_cursor_type(c["arrow_type"])]
            every = len(chosen) == len(choosable)
            _save(request, selected_columns=[] if every else chosen, cursor_choices=cursors)
            return redirect("web:wizard-strategy")
    selected = set(_draft(request).get("selected_columns") or [c["source_name"] for c in columns])
    return _render(
        request, 3, "preview", error=error, columns=columns, selected=selected,
        rows=[[row.get(c["name"]) for c in columns] for row in preview["rows"]],
    )  # fmt: skip


def _is_cursor_type(arrow_type: str) -> bool:
    return arrow_type.startswith(CURSOR_TYPE_PREFIXES)


@staff_required
def wizard_strategy(request: HttpRequest) -> HttpResponse:
    """Step 4: transactional (with its cursor column) or catalog; the destination table."""
    connection = _connection(request)
    if connection is None:
        return redirect("web:wizard-connection")
    draft = _draft(request)
    is_files = connection.type in FILE_SOURCES
    default_table = (draft.get("source_table_name") or "").rpartition(".")[2]
    initial = {"load_type": "transactional", "dest_table_name": default_table, **draft}
    initial["primary_key"] = ", ".join(draft.get("primary_key") or [])
    form = forms.StrategyForm(
        request.POST or None, initial=initial, cursor_choices=draft.get("cursor_choices", [])
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        data["primary_key"] = [c.strip() for c in data["primary_key"].split(",") if c.strip()]
        if data["load_type"] != "catalog" and not is_files and not data["timestamp_column"]:
            form.add_error(
                "timestamp_column", f"A {data['load_type']} table load needs a cursor column."
            )
        elif data["load_type"] == "merge" and not data["primary_key"]:
            form.add_error("primary_key", "A merge load needs the primary key column(s).")
        else:
            if data["load_type"] == "catalog" or is_files:
                data["timestamp_column"] = ""
            _save(request, **data)
            return redirect("web:wizard-schedule")
    return _render(
        request, 4, "strategy", form=form, is_files=is_files, strategy_help=STRATEGY_HELP
    )


@staff_required
def wizard_schedule(request: HttpRequest) -> HttpResponse:
    """Step 5: name and optional schedule (next fire times shown); save the data source."""
    connection = _connection(request)
    if connection is None:
        return redirect("web:wizard-connection")
    draft = _draft(request)
    initial = {"schedule_timezone": "UTC", "name": draft.get("dest_table_name", ""), **draft}
    form = forms.ScheduleForm(request.POST or None, initial=initial)
    other_errors: dict[str, list[str]] = {}
    fire_times: list[Any] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            fire_times = schedule_next_fire_times(
                cron=data["schedule_cron"], timezone=data["schedule_timezone"]
            )
            if request.POST.get("action") == "save":
                _save(request, **data)
                source = data_source_create(**_create_kwargs(_draft(request), connection))
                request.session.pop(SESSION_KEY, None)
                return redirect("web:source-detail", source_id=source.pk)
        except ValidationError as exc:
            other_errors = forms.form_add_errors(form, exc)
    return _render(
        request, 5, "schedule", form=form, other_errors=other_errors, fire_times=fire_times,
        connection=connection,
    )  # fmt: skip


def _create_kwargs(draft: dict[str, Any], connection: Connection) -> dict[str, Any]:
    keys = (
        "name", "dest_table_name", "load_type", "selected_columns", "source_table_name",
        "custom_sql", "timestamp_column", "primary_key", "file_prefix", "file_pattern", "file_format",
        "schedule_cron", "schedule_timezone",
    )  # fmt: skip
    kwargs = {key: draft[key] for key in keys if draft.get(key) not in (None, "")}
    return {**kwargs, "connection": connection}
