"""The 6-step ETL wizard, steps 1-3: 1 connection (choose, or create one tested before it is
saved), 2 table / files with format options, 3 preview + columns. Steps 4-6 (destination,
load strategy, schedule + save) are `wizard_load`; the draft they fill is `wizard_draft`. Each
step calls services and shows their errors next to the fields (a `ValidationError`) or above
the form (an `ApplicationError`)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

import etl
from ml_platform import selectors
from ml_platform.exceptions import ApplicationError
from ml_platform.services import connection_create, probes
from ml_platform.services.connections import connection_build
from ml_platform.services.preview import data_source_preview
from ml_platform.services.secrets import secret_seal, secret_unseal
from ml_platform.web import forms
from ml_platform.web.auth import staff_required
from ml_platform.web.forms_connection import ConnectionForm
from ml_platform.web.wizard_draft import (
    PENDING_CONNECTION,
    SESSION_KEY,
    draft_connection,
    draft_get,
    draft_save,
    draft_source,
    draft_step_done,
    step_guard,
    step_render,
)
from ml_platform.web.wizard_draft import (  # importable from here too, as before it moved
    draft_from_source as draft_from_source,
)

PREVIEW_ROWS = 20
CURSOR_TYPE_PREFIXES = ("timestamp", "date", "int", "uint", "float", "double", "decimal")
"""Arrow types a transactional cursor may have: timestamps and numbers."""
CONNECTION_TEST_FAILED = (
    "The connection test failed: {message}. Fix the fields, or save it anyway (e.g. the "
    "service is not reachable from here yet)."
)


@staff_required
def wizard_start(request: HttpRequest) -> HttpResponse:
    request.session[SESSION_KEY] = {}
    request.session.pop(PENDING_CONNECTION, None)
    return redirect("web:wizard-connection")


@staff_required
def wizard_connection(request: HttpRequest) -> HttpResponse:
    """Step 1: choose a connection (and test it), or create one: tested first, saved when the
    test passes or when "Save anyway" is chosen."""
    connections = selectors.connection_list()
    current = draft_connection(request)
    action = request.POST.get("action")
    choose = forms.ConnectionChooseForm(
        request.POST if action in ("test", "next") else None,
        connections=connections,
        initial={"connection": current.pk if current else None},
        prefix="choose",
    )
    create = ConnectionForm(
        request.POST if action == "create" else None,
        request.FILES if action == "create" else None,
        prefix="new",
    )
    context: dict[str, Any] = {"test_result": None, "create_errors": [], "pending": None}
    if action == "create" and create.is_valid():
        values = create.connection_values()
        try:
            unsaved = connection_build(**values)
            result = probes.connection_test(connection=unsaved)
            if result["ok"]:
                current = connection_create(**values)
                draft_save(request, connection_id=current.pk)
                return redirect("web:wizard-connection")
            request.session[PENDING_CONNECTION] = secret_seal(values)
            context["pending"] = {
                "name": values["name"],
                "message": CONNECTION_TEST_FAILED.format(message=result["message"].rstrip(".")),
            }
        except ValidationError as exc:
            context["create_errors"] = forms.errors_flatten(forms.form_add_errors(create, exc))
    elif action == "save_anyway" and request.session.get(PENDING_CONNECTION):
        values = secret_unseal(request.session.pop(PENDING_CONNECTION), owner="the wizard")
        try:
            current = connection_create(**values)
        except ValidationError as exc:
            context["create_errors"] = forms.errors_flatten(exc.message_dict)
        else:
            draft_save(request, connection_id=current.pk)
            return redirect("web:wizard-connection")
    elif action in ("test", "next") and choose.is_valid():
        chosen = connections.filter(pk=choose.cleaned_data["connection"]).first()
        if chosen is None:
            choose.add_error("connection", forms.CHOOSE)
        else:
            if current is None or chosen.pk != current.pk:
                draft_save(request, connection_id=chosen.pk, done=0)
            current = chosen
            if action == "next":
                draft_step_done(request, 1)
                return redirect("web:wizard-source")
            context["test_result"] = probes.connection_test(connection=chosen)
    return step_render(
        request, 1, "connection", choose=choose, create=create, current=current, **context
    )


@staff_required
def wizard_source(request: HttpRequest) -> HttpResponse:
    """Step 2: a table or custom SQL; or a prefix + pattern (files listed) and the format with
    its options."""
    if (guard := step_guard(request, 2)) is not None:
        return guard
    connection = draft_connection(request)
    draft, context = draft_get(request), {"connection": connection, "error": None}
    is_files = connection.type in etl.FILE_SOURCES
    if is_files:
        form: Any = forms.FilesForm(
            request.POST or None, initial=forms.FilesForm.initial_from(draft)
        )
    else:
        form = forms.TableForm(request.POST or None, initial=draft)
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
            if schema not in schemas:
                schema = "public" if "public" in schemas else ""
            context.update(schemas=schemas, schema=schema)
            context["tables"] = probes.connection_browse_tables(
                connection=connection, schema=schema or None
            )
    except ApplicationError as exc:
        context["error"] = exc.message
    if request.method == "POST" and form.is_valid() and context["error"] is None:
        values = dict(form.cleaned_data)
        if is_files:
            values = {k: values[k] for k in ("file_prefix", "file_pattern", "file_format",
                                             "file_format_options")}  # fmt: skip
            values["file_format_options"] = forms.FilesForm.options_kept(
                values["file_format_options"], draft, values["file_format"]
            )
        else:
            values["schema"] = context.get("schema", "")
        if request.POST.get("action") == "next" and (not is_files or context["files"]["files"]):
            draft_save(request, **values)
            draft_step_done(request, 2)
            return redirect("web:wizard-preview")
        if is_files and not context["files"]["files"]:
            form.add_error("file_pattern", "No file matches this prefix and pattern.")
    return step_render(request, 2, "source", form=form, is_files=is_files, **context)


@staff_required
def wizard_preview(request: HttpRequest) -> HttpResponse:
    """Step 3: sample rows with destination names and types; choose the columns. A preview
    that fails says why and offers the way back to step 2 (no dead Next button)."""
    if (guard := step_guard(request, 3)) is not None:
        return guard
    connection = draft_connection(request)
    error, preview = None, {"columns": [], "rows": []}
    # bad rows are set aside, not fatal, so a file with one bad line can still be previewed and
    # its source set to quarantine them in step 5
    source = draft_source(
        request, connection, load_type="catalog", selected_columns=[], on_bad_rows="quarantine"
    )
    try:
        preview = data_source_preview(data_source=source, limit=PREVIEW_ROWS)
    except ApplicationError as exc:
        error = exc.message
    except (etl.EtlError, ValidationError, pa.ArrowException) as exc:
        error = f"The preview failed: {type(exc).__name__}: {exc}"[:2000]
    if error is None and not preview["columns"]:
        error = "The source returned no rows and no columns to preview."
    columns = preview["columns"]
    for column in columns:  # added by the engine (e.g. `_etl_source_file`), always loaded
        column["system"] = column["source_name"].startswith("_etl_")
    choosable = [c for c in columns if not c["system"]]
    if request.method == "POST" and error is None:
        valid = {c["source_name"] for c in choosable}
        chosen = [name for name in request.POST.getlist("columns") if name in valid]
        if not chosen:
            error = "Select at least one column."
        else:
            cursors = [c["source_name"] for c in choosable if _is_cursor_type(c["arrow_type"])]
            every = len(chosen) == len(choosable)
            draft_save(
                request,
                selected_columns=[] if every else chosen,
                cursor_choices=cursors,
                cursor_types={
                    c["source_name"]: c["arrow_type"]
                    for c in choosable
                    if c["source_name"] in cursors
                },
                column_choices=[c["source_name"] for c in choosable],
                # destination name + BigQuery type of each loaded column: the destination
                # step's partitioning and clustering choices
                dest_columns=[
                    [c["name"], c["bigquery_type"]]
                    for c in columns
                    if c["system"] or c["source_name"] in chosen
                ],
            )
            draft_step_done(request, 3)
            return redirect("web:wizard-destination")
    selected = set(
        draft_get(request).get("selected_columns") or [c["source_name"] for c in columns]
    )
    return step_render(
        request, 3, "preview", error=error, columns=columns, selected=selected,
        rows=[[row.get(c["name"]) for c in columns] for row in preview["rows"]],
    )  # fmt: skip


def _is_cursor_type(arrow_type: str) -> bool:
    return arrow_type.startswith(CURSOR_TYPE_PREFIXES)
