from django.apps import AppConfig


class MlPlatformConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ml_platform"
    verbose_name = "ETL Runner"

    def ready(self) -> None:
        from ml_platform import checks  # noqa: F401  registers the system checks
        from ml_platform.contract import connection_types_check

        connection_types_check()  # the connection types must match the engine's registry
