"""The ETL wizard's draft and step helpers, used by both halves of the wizard (`wizard`, steps
1-3; `wizard_load`, steps 4-6): the draft lives in the session (secrets sealed with the
credentials key) until step 6 saves it; a step opens only once the steps before it are done."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from ml_platform import contract
from ml_platform.models import Connection, DataSource
from ml_platform.services.secrets import secret_read, secret_unseal

SESSION_KEY = "etl_wizard"
PENDING_CONNECTION = "etl_wizard_pending_connection"
STEPS = [
    "Connection",
    "Table or files",
    "Preview & columns",
    "Destination",
    "Load strategy",
    "Schedule & save",
]
STEP_URLS = ["wizard-connection", "wizard-source", "wizard-preview", "wizard-destination",
             "wizard-strategy", "wizard-schedule"]  # fmt: skip


def draft_get(request: HttpRequest) -> dict[str, Any]:
    return request.session.setdefault(SESSION_KEY, {})


def draft_save(request: HttpRequest, **values: Any) -> None:
    request.session[SESSION_KEY] = {**draft_get(request), **values}


def draft_step_done(request: HttpRequest, step: int) -> None:
    """Record that `step` was completed (later steps may be opened)."""
    draft_save(request, done=max(step, int(draft_get(request).get("done", 0))))


def draft_connection(request: HttpRequest) -> Connection | None:
    connection_id = draft_get(request).get("connection_id")
    return Connection.objects.filter(pk=connection_id).first() if connection_id else None


def step_guard(request: HttpRequest, step: int) -> HttpResponse | None:
    """Redirect to the first step not completed yet when `step` cannot be shown yet."""
    done = int(draft_get(request).get("done", 0))
    if draft_connection(request) is None:
        done = 0
    if done < step - 1:
        return redirect(f"web:{STEP_URLS[done]}")
    return None


def step_render(request: HttpRequest, step: int, template: str, **context: Any) -> HttpResponse:
    draft = draft_get(request)
    context.update(step=step, steps=STEPS, step_urls=STEP_URLS, draft=draft,
                   editing=draft.get("editing_id"), done=int(draft.get("done", 0)))  # fmt: skip
    return render(request, f"web/wizard_{template}.html", context)


DRAFT_FIELDS = tuple(name for name in contract.data_source_fields() if name != "connection")
"""The `DataSource` fields a wizard draft holds (the connection is `connection_id`)."""


def draft_source(request: HttpRequest, connection: Connection, **overrides: Any) -> DataSource:
    """An unsaved `DataSource` of the draft (with the id of the source being edited), for
    previews, tests and checks; a field the draft leaves blank takes the model's default."""
    draft = {**draft_get(request), **overrides}
    values = {key: draft[key] for key in DRAFT_FIELDS if draft.get(key) not in (None, "")}
    values.setdefault("name", "draft")
    values.setdefault("dest_table_name", "draft")
    values.setdefault("load_type", DataSource.LoadType.CATALOG)
    source = DataSource(pk=draft.get("editing_id"), connection=connection, **values)
    source.destination_credentials = draft_destination_credentials_stored(request)
    return source


def draft_destination_credentials(request: HttpRequest) -> tuple[bool, Any]:
    """`(given, value)`: the destination credentials chosen in this draft (`given` False: keep
    the stored ones of the source being edited)."""
    draft = draft_get(request)
    if "destination_credentials" not in draft:
        return False, None
    sealed = draft["destination_credentials"]
    value = secret_unseal(sealed, owner="the wizard draft") if sealed else None
    return True, value


def draft_destination_credentials_stored(request: HttpRequest) -> str | None:
    """The draft's destination credentials as a `SecretTextField` value (JSON text)."""
    import json

    given, value = draft_destination_credentials(request)
    if given:
        return json.dumps(value) if value is not None else None
    editing = draft_get(request).get("editing_id")
    source = DataSource.objects.filter(pk=editing).first() if editing else None
    return source.destination_credentials if source else None


def draft_from_source(source: DataSource) -> dict[str, Any]:
    """The wizard draft of an existing source (edit: every step prefilled, all completed)."""
    draft = {key: getattr(source, key) for key in DRAFT_FIELDS}
    draft.update(editing_id=source.pk, connection_id=source.connection_id, done=5)
    draft["schema"] = source.source_table_name.rpartition(".")[0]
    stored = secret_read(source.destination_credentials, owner=f"data source {source.pk}")
    draft["has_destination_key"] = isinstance(stored, dict)
    return draft
