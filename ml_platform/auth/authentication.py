"""DRF authentication classes for machine callers."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ml_platform.auth.oidc import runner_token_verify, scheduler_token_verify


@dataclass(frozen=True)
class SchedulerPrincipal:
    """The Cloud Scheduler service account a verified token belongs to (not a Django user)."""

    email: str
    is_authenticated: bool = True
    is_staff: bool = False

    def __str__(self) -> str:
        return self.email


class SchedulerOidcAuthentication(BaseAuthentication):
    """`Authorization: Bearer <Google OIDC ID token>` as Cloud Scheduler sends it.

    No or another scheme: not attempted, so DRF answers 401 with `authenticate_header`. A bad
    token: 401; the certs endpoint unreachable: 503 (see `scheduler_token_verify`).
    """

    def authenticate(self, request: Request) -> tuple[SchedulerPrincipal, dict[str, Any]] | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        claims = scheduler_token_verify(token=token.strip())
        return SchedulerPrincipal(email=claims["email"]), claims

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="scheduler-webhook"'


RUNNER_TOKEN_INVALID = "Invalid runner token."
RUNNER_NOT_ALLOWED = "Only a runner credential may read job configs and report results."


@dataclass(frozen=True)
class RunnerPrincipal:
    """A Cloud Run Job runner: `ETL_RUNNER_TOKEN` holder or an allowed Google service account."""

    name: str
    is_authenticated: bool = True
    is_staff: bool = False

    def __str__(self) -> str:
        return self.name


class RunnerAuthentication(BaseAuthentication):
    """`Authorization: Bearer <credential>` (or `Token <credential>`) of a runner.

    The credential is the shared `ETL_RUNNER_TOKEN` (compared in constant time) or a Google ID
    token (a JWT) with `aud` = `ETL_RUNNER_OIDC_AUDIENCE` and `email` in
    `ETL_RUNNER_ALLOWED_EMAILS`. No header or another scheme: not attempted (401 with the
    challenge); anything else (a user's DRF token included): 401; Google's certs unreachable:
    503. Sessions are never accepted.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("bearer", "token") or not credential:
            return None
        shared = settings.ETL_RUNNER_TOKEN
        if shared and hmac.compare_digest(credential.encode(), shared.encode()):
            return RunnerPrincipal(name="runner-token"), None
        if credential.count(".") == 2:
            claims = runner_token_verify(token=credential)
            return RunnerPrincipal(name=claims["email"]), claims
        # a person's DRF token is no runner credential, staff or not
        raise AuthenticationFailed(RUNNER_TOKEN_INVALID)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="etl-runner"'


class IsRunner(BasePermission):
    """A `RunnerPrincipal` only: runner API answers carry secrets, which no person reads."""

    message = RUNNER_NOT_ALLOWED

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, RunnerPrincipal)
