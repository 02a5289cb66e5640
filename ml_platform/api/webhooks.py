"""The Cloud Scheduler webhook: a Google-signed OIDC ID token starts (at most) one run."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ml_platform import selectors
from ml_platform.auth.authentication import SchedulerOidcAuthentication
from ml_platform.models import EtlRun
from ml_platform.services import etl_run_enqueue

SOURCE_NOT_FOUND = "Data source {source_id} does not exist or is disabled."
SCHEDULE_TIME_HEADER = "X-CloudScheduler-ScheduleTime"


class DataSourceSchedulerWebhookApi(APIView):
    """`POST /api/etl/sources/<id>/scheduler-webhook/` from Cloud Scheduler (OIDC token).

    401 (with `WWW-Authenticate`, saying what failed) on a missing or bad token, 503 when
    Google's certs cannot be fetched or the broker cannot take the run (`Retry-After`; nothing
    is queued, Cloud Scheduler retries), 404 for an unknown or disabled source, else 202 with
    the run. The same `X-CloudScheduler-ScheduleTime` always gives the same run, even after it
    finished; a delivery while a run is queued or running gives that run.
    """

    authentication_classes = [SchedulerOidcAuthentication]
    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        run_id = serializers.IntegerField()
        status = serializers.CharField()
        data_source = serializers.IntegerField()

        class Meta:
            ref_name = "SchedulerWebhookResult"

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter(SCHEDULE_TIME_HEADER, str, OpenApiParameter.HEADER)],
        responses={202: OutputSerializer},
        auth=[],
    )
    def post(self, request: Request, source_id: int) -> Response:
        data_source = selectors.data_source_get_enabled(id=source_id)
        if data_source is None:
            raise NotFound(SOURCE_NOT_FOUND.format(source_id=source_id))
        schedule_time = request.headers.get(SCHEDULE_TIME_HEADER, "").strip()
        run = etl_run_enqueue(
            data_source=data_source,
            trigger=EtlRun.Trigger.SCHEDULER,
            idempotency_key=f"scheduler:{schedule_time}"[:255] if schedule_time else None,
        )
        data = {"run_id": run.id, "status": run.status, "data_source": data_source.id}
        return Response(self.OutputSerializer(data).data, status=status.HTTP_202_ACCEPTED)
