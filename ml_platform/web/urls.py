"""Routes of the web pages under `etl/`."""

from django.urls import path

from ml_platform.web import sources, wizard

app_name = "web"

urlpatterns = [
    path("", sources.source_list, name="source-list"),
    path("sources/<int:source_id>/", sources.source_detail, name="source-detail"),
    path("sources/<int:source_id>/run/", sources.source_run, name="source-run"),
    path("sources/<int:source_id>/runs.json", sources.source_runs_json, name="source-runs-json"),
    path("new/", wizard.wizard_start, name="wizard-start"),
    path("new/1-connection/", wizard.wizard_connection, name="wizard-connection"),
    path("new/2-source/", wizard.wizard_source, name="wizard-source"),
    path("new/3-preview/", wizard.wizard_preview, name="wizard-preview"),
    path("new/4-strategy/", wizard.wizard_strategy, name="wizard-strategy"),
    path("new/5-schedule/", wizard.wizard_schedule, name="wizard-schedule"),
]
