"""API routes under `api/`: one APIView per operation (shared/STYLE.md R5)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from ml_platform.api import connections, data_sources, runner, runner_chunks, runs, webhooks
from ml_platform.api.views import ApiDocsView, HealthApi

app_name = "api"

connection_patterns = [
    path("", connections.ConnectionListApi.as_view(), name="list"),
    path("<int:connection_id>/", connections.ConnectionDetailApi.as_view(), name="detail"),
    path("<int:connection_id>/test/", connections.ConnectionTestApi.as_view(), name="test"),
    path(
        "<int:connection_id>/schemas/", connections.ConnectionSchemasApi.as_view(), name="schemas"
    ),
    path("<int:connection_id>/tables/", connections.ConnectionTablesApi.as_view(), name="tables"),
    path(
        "<int:connection_id>/columns/", connections.ConnectionColumnsApi.as_view(), name="columns"
    ),
    path("<int:connection_id>/files/", connections.ConnectionFilesApi.as_view(), name="files"),
]

source_patterns = [
    path("", data_sources.DataSourceListApi.as_view(), name="list"),
    path("<int:source_id>/", data_sources.DataSourceDetailApi.as_view(), name="detail"),
    path("<int:source_id>/preview/", data_sources.DataSourcePreviewApi.as_view(), name="preview"),
    path("<int:source_id>/run/", data_sources.DataSourceRunApi.as_view(), name="run"),
    path("<int:source_id>/reset/", data_sources.DataSourceResetApi.as_view(), name="reset"),
    path(
        "<int:source_id>/scheduler-webhook/",
        webhooks.DataSourceSchedulerWebhookApi.as_view(),
        name="scheduler-webhook",
    ),
    path("<int:source_id>/config/", runner.DataSourceRunnerConfigApi.as_view(), name="config"),
]

run_patterns = [
    path("", runs.EtlRunListApi.as_view(), name="list"),
    path("<int:run_id>/", runs.EtlRunDetailApi.as_view(), name="detail"),
    path("<uuid:run_uid>/result/", runner.EtlRunResultApi.as_view(), name="result"),
    path("<uuid:run_uid>/heartbeat/", runner.EtlRunHeartbeatApi.as_view(), name="heartbeat"),
    path("<uuid:run_uid>/reader/", runner.EtlRunReaderClaimApi.as_view(), name="reader"),
    path("<uuid:run_uid>/chunks/", runner_chunks.EtlRunChunksApi.as_view(), name="chunks"),
    path(
        "<uuid:run_uid>/chunks/<int:index>/claim/",
        runner_chunks.EtlRunChunkClaimApi.as_view(),
        name="chunk-claim",
    ),
    path(
        "<uuid:run_uid>/chunks/<int:index>/heartbeat/",
        runner_chunks.EtlRunChunkHeartbeatApi.as_view(),
        name="chunk-heartbeat",
    ),
    path(
        "<uuid:run_uid>/chunks/<int:index>/report/",
        runner_chunks.EtlRunChunkReportApi.as_view(),
        name="chunk-report",
    ),
]

urlpatterns = [
    path("health/", HealthApi.as_view(), name="health"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", ApiDocsView.as_view(url_name="api:schema"), name="docs"),
    path("etl/connections/", include((connection_patterns, "connections"))),
    path("etl/sources/", include((source_patterns, "sources"))),
    path("etl/runs/", include((run_patterns, "runs"))),
]
