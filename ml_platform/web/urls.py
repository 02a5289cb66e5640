"""Routes of the web pages under `etl/`."""

from django.urls import path

from ml_platform.web import connections, runs, sources, wizard, wizard_load

app_name = "web"

urlpatterns = [
    path("", sources.source_list, name="source-list"),
    path("sources/<int:source_id>/", sources.source_detail, name="source-detail"),
    path("sources/<int:source_id>/run/", sources.source_run, name="source-run"),
    path("sources/<int:source_id>/runs.json", sources.source_runs_json, name="source-runs-json"),
    path("sources/<int:source_id>/edit/", wizard_load.source_edit, name="source-edit"),
    path("sources/<int:source_id>/enable/", sources.source_enable, name="source-enable"),
    path("sources/<int:source_id>/delete/", sources.source_delete, name="source-delete"),
    path("sources/<int:source_id>/reset/", sources.source_reset, name="source-reset"),
    path("runs/<int:run_id>/", runs.run_detail, name="run-detail"),
    path("connections/", connections.connection_list, name="connection-list"),
    path(
        "connections/<int:connection_id>/edit/", connections.connection_edit, name="connection-edit"
    ),  # fmt: skip
    path(
        "connections/<int:connection_id>/delete/",
        connections.connection_delete,
        name="connection-delete",
    ),
    path("new/", wizard.wizard_start, name="wizard-start"),
    path("new/1-connection/", wizard.wizard_connection, name="wizard-connection"),
    path("new/2-source/", wizard.wizard_source, name="wizard-source"),
    path("new/3-preview/", wizard.wizard_preview, name="wizard-preview"),
    path("new/4-destination/", wizard_load.wizard_destination, name="wizard-destination"),
    path("new/5-strategy/", wizard_load.wizard_strategy, name="wizard-strategy"),
    path("new/6-schedule/", wizard_load.wizard_schedule, name="wizard-schedule"),
]
