"""Source list, source page with Run Now and run history, and the small JSON endpoint the
source page polls for live progress of a running run."""

from __future__ import annotations

from typing import Any

import structlog
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ml_platform import selectors
from ml_platform.exceptions import ApplicationError
from ml_platform.models import DataSource, EtlRun
from ml_platform.services import data_source_delete, data_source_update, etl_run_enqueue
from ml_platform.services.schedules import schedule_next_fire_times
from ml_platform.services.state import sync_state_reset
from ml_platform.web.auth import staff_required

logger = structlog.get_logger(__name__)

RUN_HISTORY = 50
"""Runs shown on a source page (newest first)."""


def _source(source_id: int) -> DataSource:
    try:
        return selectors.data_source_get(id=source_id)
    except DataSource.DoesNotExist:
        raise Http404(f"No data source {source_id}.") from None


def _next_run(source: DataSource) -> Any:
    if not (source.enabled and source.schedule_cron):
        return None
    times = schedule_next_fire_times(
        cron=source.schedule_cron, timezone=source.schedule_timezone, count=1
    )
    return times[0] if times else None


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """Bars of `values` scaled to their maximum (rows per run, oldest first); "" when none."""
    if not values:
        return ""
    top = max(values) or 1
    return "".join(SPARK[round(value * (len(SPARK) - 1) / top)] for value in values)


@staff_required
def source_list(request: HttpRequest) -> HttpResponse:
    sources = list(selectors.data_source_list_overview())
    latest, success = selectors.etl_run_latest_by_source(sources=sources)
    for source in sources:
        source.next_run = _next_run(source)
        source.last_run = latest.get(source.pk)
        source.last_success = success.get(source.pk)
        source.trend = sparkline(selectors.etl_run_rows_trend(data_source=source))
    return render(request, "web/source_list.html", {"sources": sources})


@staff_required
def source_detail(request: HttpRequest, source_id: int) -> HttpResponse:
    source = _source(source_id)
    runs = list(selectors.etl_run_list(data_source=source)[:RUN_HISTORY])
    state = selectors.sync_state_get(data_source=source)
    fire_times = (
        schedule_next_fire_times(cron=source.schedule_cron, timezone=source.schedule_timezone)
        if source.schedule_cron and source.enabled
        else []
    )
    return render(
        request,
        "web/source_detail.html",
        {"source": source, "runs": runs, "fire_times": fire_times, "state": state},
    )


@staff_required
@require_POST
def source_run(request: HttpRequest, source_id: int) -> HttpResponse:
    """Run Now: enqueue a manual run (or return the active one) and go back to the page; a run
    that failed within the request (eager Celery, no worker) goes to its own page, which shows
    the error."""
    from ml_platform.services.runs import RunEnqueueUnavailableError

    source = _source(source_id)
    try:
        run = etl_run_enqueue(data_source=source, trigger=EtlRun.Trigger.MANUAL, return_failed=True)
    except RunEnqueueUnavailableError as exc:  # nothing was queued: say so, the user retries
        return JsonResponse(
            {"message": exc.message, "extra": {"retry_after_s": exc.retry_after_s}},
            status=503,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if run.status == EtlRun.Status.FAILED:
        logger.warning("web.run_now_failed", data_source_id=source.pk, error=run.error_class)
        return redirect("web:run-detail", run_id=run.id)
    return redirect("web:source-detail", source_id=source.pk)


def run_json(run: EtlRun) -> dict[str, Any]:
    """Return the fields the source page shows of a run (rows, bytes, seconds, ISO 8601)."""
    return {
        "id": run.id,
        "status": run.status,
        "status_label": run.status_label,
        "status_class": run.status_class,
        "rows_rejected": run.rows_rejected,
        "warnings": len(run.warnings),
        "trigger": run.get_trigger_display(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "duration_s": run.duration_s,
        "rows_loaded": run.rows_loaded,
        "progress_rows": run.progress_rows,
        "bytes_extracted": run.bytes_extracted or run.progress_bytes,
        "error_message": run.error_message,
        "active": run.status in EtlRun.ACTIVE_STATUSES,
    }


@staff_required
def source_runs_json(request: HttpRequest, source_id: int) -> JsonResponse:
    """`{"runs": [run_json...]}`: the newest `RUN_HISTORY` runs, polled by the source page."""
    source = _source(source_id)
    runs = selectors.etl_run_list(data_source=source)[:RUN_HISTORY]
    return JsonResponse({"runs": [run_json(run) for run in runs]})


@staff_required
@require_POST
def source_enable(request: HttpRequest, source_id: int) -> HttpResponse:
    """Enable (`enabled=1`) or disable (`enabled=0`) a source; its schedule follows."""
    source = _source(source_id)
    enabled = request.POST.get("enabled") == "1"
    try:
        data_source_update(data_source=source, data={"enabled": enabled})
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"{source.name} {'enabled' if enabled else 'disabled'}.")
    return redirect("web:source-detail", source_id=source.pk)


@staff_required
def source_delete(request: HttpRequest, source_id: int) -> HttpResponse:
    """GET: what deleting removes, and a confirm button; POST: delete the source with its
    runs, state and schedule (the destination table stays)."""
    source = _source(source_id)
    if request.method == "POST":
        try:
            data_source_delete(data_source=source)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("web:source-detail", source_id=source.pk)
        messages.success(request, f"Data source {source.name} deleted.")
        return redirect("web:source-list")
    return render(
        request,
        "web/source_delete.html",
        {"source": source, "runs": source.runs.count(), "files": source.processed_files.count()},
    )


@staff_required
@require_POST
def source_reset(request: HttpRequest, source_id: int) -> HttpResponse:
    """Reset the source's state (its next run reloads everything and replaces the table);
    `action=refresh` also starts that run now (full refresh)."""
    source = _source(source_id)
    try:
        sync_state_reset(data_source=source)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:source-detail", source_id=source.pk)
    if request.POST.get("action") == "refresh":
        messages.success(request, "State reset; a full refresh run was started.")
        return source_run(request, source_id)
    messages.success(request, "State reset: the next run reloads everything.")
    return redirect("web:source-detail", source_id=source.pk)
