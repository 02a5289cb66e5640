"""Connection pages: the list, edit (the wizard's connection form, prefilled; secrets left
blank keep the stored ones; tested before it is saved unless "Save anyway") and delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ml_platform import selectors
from ml_platform.exceptions import ApplicationError
from ml_platform.models import Connection
from ml_platform.services import connection_delete as connection_delete_service
from ml_platform.services import connection_update, credentials_read, probes
from ml_platform.services.connections import connection_build
from ml_platform.web.auth import staff_required
from ml_platform.web.forms import errors_flatten, form_add_errors
from ml_platform.web.forms_connection import ConnectionForm
from ml_platform.web.wizard import CONNECTION_TEST_FAILED


def _connection(connection_id: int) -> Connection:
    try:
        return selectors.connection_get(id=connection_id)
    except Connection.DoesNotExist:
        raise Http404(f"No connection {connection_id}.") from None


@staff_required
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = selectors.connection_list().prefetch_related("data_sources")
    return render(request, "web/connection_list.html", {"connections": connections})


@staff_required
def connection_edit(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Change a connection: the form prefilled; "Test and save" saves only when the test of
    the changed connection passes; "Save anyway" saves without the test."""
    connection = _connection(connection_id)
    stored = credentials_read(connection=connection)
    form = ConnectionForm(
        request.POST or None,
        request.FILES or None,
        instance=connection,
        stored_credentials=stored,
        prefix="new",
    )
    test_failed, errors = None, []
    if request.method == "POST" and form.is_valid():
        values = form.connection_values()
        credentials = values.pop("credentials") or {}
        try:
            if request.POST.get("action") != "save_anyway":
                unsaved = connection_build(**values, credentials=credentials, pk=connection.pk)
                result = probes.connection_test(connection=unsaved)
                if not result["ok"]:
                    test_failed = CONNECTION_TEST_FAILED.format(
                        message=result["message"].rstrip(".")
                    )
            if test_failed is None:
                connection_update(
                    connection=connection,
                    data=values,
                    credentials=credentials or None,
                    clear_credentials=not credentials,
                )
                messages.success(request, f"Connection {connection.name} saved.")
                return redirect("web:connection-list")
        except ValidationError as exc:
            errors = errors_flatten(form_add_errors(form, exc))
    return render(
        request,
        "web/connection_edit.html",
        {"connection": connection, "form": form, "test_failed": test_failed, "errors": errors},
    )


@staff_required
@require_POST
def connection_delete(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = _connection(connection_id)
    try:
        connection_delete_service(connection=connection)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Connection {connection.name} deleted.")
    return redirect("web:connection-list")
