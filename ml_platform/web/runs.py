"""The run page: status (amber "Succeeded with warnings" when a run has warnings or rejected
rows), trigger, times in a labelled zone, duration, counts, rows/s, watermark before -> after,
the run id stamped in `_etl_run_id`, a parallel run's chunks (status, attempt, worker, seconds
waited for a reader slot, rows), the warnings, the first rejected rows and the run's own
log lines (`?q=` filters them)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from ml_platform import selectors
from ml_platform.models import EtlRun
from ml_platform.services.rejects import rejected_rows_read
from ml_platform.services.run_logs import etl_run_log_search
from ml_platform.web.auth import staff_required

REJECTED_SHOWN = 20
"""Rejected rows shown on a run page (the first ones)."""


def run_figures(run: EtlRun) -> dict[str, Any]:
    """Derived figures of a run: `rows_per_s` (rows loaded per second, None before it ends)."""
    seconds = run.duration_s or 0
    return {"rows_per_s": run.rows_loaded / seconds if seconds and run.rows_loaded else None}


@staff_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    try:
        run = selectors.etl_run_get(id=run_id)
    except EtlRun.DoesNotExist:
        raise Http404(f"No run {run_id}.") from None
    previous = (
        selectors.etl_run_list(data_source=run.data_source, status=EtlRun.Status.SUCCEEDED)
        .filter(queued_at__lt=run.queued_at)
        .first()
    )
    query = request.GET.get("q", "")[:200]
    log_lines = etl_run_log_search(run=run, query=query)
    rejected, rejected_error = [], None
    if run.rows_rejected:
        rejected, rejected_error = rejected_rows_read(run=run, limit=REJECTED_SHOWN)
    return render(
        request,
        "web/run_detail.html",
        {
            "run": run,
            "source": run.data_source,
            "previous": previous,
            "rejected": rejected,
            "rejected_error": rejected_error,
            "log_lines": log_lines,
            "log_query": query,
            "chunks": list(run.chunks.order_by("index")),
            **run_figures(run),
        },
    )
