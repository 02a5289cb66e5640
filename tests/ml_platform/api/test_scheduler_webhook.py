"""The Cloud Scheduler webhook against real RS256 ID tokens signed by a key generated here, with
the certs (`{kid: x509 PEM}`, Google's format) served by a local HTTP server on loopback.

Every rejected delivery creates no `EtlRun`.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt
from rest_framework.test import APIClient

from ml_platform.auth.oidc import CERTS_CACHE
from ml_platform.models import DataSource, EtlRun

pytestmark = pytest.mark.django_db

AUDIENCE = "https://etl.example.com/api/etl/sources/"
SCHEDULER_EMAIL = "scheduler@my-project.iam.gserviceaccount.com"
CHALLENGE = 'Bearer realm="scheduler-webhook"'
SCHEDULE_TIME = "2026-01-05T06:00:00.000Z"


@dataclass
class SigningKey:
    kid: str
    private_pem: bytes
    cert_pem: str

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        signer = crypt.RSASigner.from_string(self.private_pem, key_id=kid or self.kid)
        return google_jwt.encode(signer, claims).decode()


def _signing_key(kid: str) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google-oidc")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(kid, private_pem, cert.public_bytes(serialization.Encoding.PEM).decode())


@dataclass
class CertsServer:
    url: str
    hits: list[str] = field(default_factory=list)
    status: int = 200
    cache_control: str = "public, max-age=300"


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    return _signing_key("test-kid-1")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return _signing_key("test-kid-1")


@pytest.fixture
def certs_server(google_key: SigningKey) -> Iterator[CertsServer]:
    """Serve `{kid: PEM}` of `google_key` at http://127.0.0.1:<port>/oauth2/v1/certs."""
    state = CertsServer(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            state.hits.append(self.path)
            body = json.dumps({google_key.kid: google_key.cert_pem}).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Cache-Control", state.cache_control)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def oidc(settings: Any, certs_server: CertsServer) -> CertsServer:
    settings.SCHEDULER_OIDC_AUDIENCE = AUDIENCE
    settings.SCHEDULER_OIDC_ALLOWED_EMAILS = [SCHEDULER_EMAIL]
    settings.SCHEDULER_OIDC_CERTS_URL = certs_server.url
    settings.SCHEDULER_OIDC_CLOCK_SKEW_S = 30
    CERTS_CACHE.clear()
    yield certs_server
    CERTS_CACHE.clear()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "sub": "113456789012345678901",
        "email": SCHEDULER_EMAIL,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _deliver(source: DataSource, authorization: str | None, **headers: str) -> Any:
    """POST as Cloud Scheduler does: bearer ID token, its schedule-time and job-name headers."""
    extra = {"HTTP_X_CLOUDSCHEDULER": "true", "HTTP_X_CLOUDSCHEDULER_JOBNAME": "orders-hourly"}
    if authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization
    for name, value in headers.items():
        extra[f"HTTP_{name.upper()}"] = value
    return APIClient().post(f"/api/etl/sources/{source.id}/scheduler-webhook/", **extra)


def test_valid_token_starts_run(
    oidc: CertsServer,
    google_key: SigningKey,
    csv_source: DataSource,
    warehouse: Path,
    django_capture_on_commit_callbacks,
) -> None:
    """A valid token: 202 with the run id; the (eager) task loads the 4 CSV rows."""
    token = google_key.sign(_claims())
    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(
            csv_source, f"Bearer {token}", X_CLOUDSCHEDULER_SCHEDULETIME=SCHEDULE_TIME
        )

    assert response.status_code == 202
    run = EtlRun.objects.get()
    assert response.json() == {"run_id": run.id, "status": "queued", "data_source": csv_source.id}
    assert (run.trigger, run.idempotency_key, run.status, run.rows_loaded) == (
        "scheduler",
        f"scheduler:{SCHEDULE_TIME}",
        "succeeded",
        4,
    )
    with duckdb.connect(str(warehouse)) as conn:
        assert conn.execute("SELECT count(*) FROM raw_data.orders").fetchone() == (4,)


def test_same_schedule_time_twice_one_run(
    oidc: CertsServer,
    google_key: SigningKey,
    csv_source: DataSource,
    django_capture_on_commit_callbacks,
) -> None:
    """The same delivery twice (even after the run finished) returns the same run; the certs
    were fetched once (cached for max-age)."""
    token = google_key.sign(_claims())
    with django_capture_on_commit_callbacks(execute=True):
        first = _deliver(csv_source, f"Bearer {token}", X_CLOUDSCHEDULER_SCHEDULETIME=SCHEDULE_TIME)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = _deliver(
            csv_source, f"Bearer {token}", X_CLOUDSCHEDULER_SCHEDULETIME=SCHEDULE_TIME
        )

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json() == {
        "run_id": first.json()["run_id"],
        "status": "succeeded",
        "data_source": csv_source.id,
    }
    assert callbacks == []
    assert EtlRun.objects.count() == 1
    assert len(oidc.hits) == 1


def test_expired_within_clock_skew_accepted(
    oidc: CertsServer, google_key: SigningKey, csv_source: DataSource
) -> None:
    """A token that expired 10 s ago passes with the 30 s skew."""
    now = int(time.time())
    token = google_key.sign(_claims(iat=now - 3610, exp=now - 10))
    assert _deliver(csv_source, f"Bearer {token}").status_code == 202


def _bad_token(case: str, google_key: SigningKey, other_key: SigningKey) -> str | None:
    now = int(time.time())
    if case == "wrong-audience":
        return "Bearer " + google_key.sign(_claims(aud="https://other.example.com/"))
    if case == "expired":
        return "Bearer " + google_key.sign(_claims(iat=now - 7200, exp=now - 3600))
    if case == "wrong-issuer":
        return "Bearer " + google_key.sign(_claims(iss="https://evil.example.com"))
    if case == "bad-signature":
        return "Bearer " + other_key.sign(_claims())
    if case == "unknown-kid":
        return "Bearer " + google_key.sign(_claims(), kid="rotated-away")
    if case == "email-not-allowed":
        return "Bearer " + google_key.sign(_claims(email="intruder@evil.iam.gserviceaccount.com"))
    if case == "email-unverified":
        return "Bearer " + google_key.sign(_claims(email_verified=False))
    if case == "no-email":
        return "Bearer " + google_key.sign(_claims(email=None))
    if case == "missing-header":
        return None
    if case == "garbage-bearer":
        return "Bearer not.a.jwt"
    if case == "basic-scheme":
        return "Basic c2NoZWR1bGVyOnB3"
    if case == "empty-bearer":
        return "Bearer "
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong-audience", "Invalid scheduler ID token: audience mismatch."),
        ("expired", "Invalid scheduler ID token: expired."),
        (
            "wrong-issuer",
            "Invalid scheduler ID token: issuer 'https://evil.example.com' is not Google.",
        ),
        ("bad-signature", "Invalid scheduler ID token: bad signature."),
        ("unknown-kid", "Invalid scheduler ID token: unknown signing key id."),
        (
            "email-not-allowed",
            "Scheduler ID token email 'intruder@evil.iam.gserviceaccount.com' is not in the "
            "allow-list.",
        ),
        ("email-unverified", "Invalid scheduler ID token: email_verified is not true."),
        ("no-email", "Scheduler ID token email '' is not in the allow-list."),
        ("missing-header", "Authentication credentials were not provided."),
        ("garbage-bearer", "Invalid scheduler ID token: malformed token."),
        ("basic-scheme", "Authentication credentials were not provided."),
        ("empty-bearer", "Authentication credentials were not provided."),
    ],
    ids=lambda value: value if " " not in value else "",
)
def test_bad_token_401_starts_nothing(
    case: str,
    message: str,
    oidc: CertsServer,
    google_key: SigningKey,
    other_key: SigningKey,
    csv_source: DataSource,
    django_capture_on_commit_callbacks,
) -> None:
    """Each bad or missing token: 401 with the Bearer challenge and what failed (never the
    configured audience, nor the token), no run."""
    authorization = _bad_token(case, google_key, other_key)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _deliver(csv_source, authorization, X_CLOUDSCHEDULER_SCHEDULETIME=SCHEDULE_TIME)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == CHALLENGE
    assert response.json()["message"] == message
    assert AUDIENCE not in response.content.decode()
    assert callbacks == []
    assert EtlRun.objects.count() == 0


@pytest.mark.parametrize("failure", ["refused", "http-500"])
def test_certs_unreachable_503_starts_nothing(
    failure: str,
    oidc: CertsServer,
    google_key: SigningKey,
    csv_source: DataSource,
    settings: Any,
) -> None:
    """Certs endpoint refusing connections or answering 500: 503 (Cloud Scheduler retries),
    no run."""
    if failure == "refused":
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings.SCHEDULER_OIDC_CERTS_URL = f"http://127.0.0.1:{port}/oauth2/v1/certs"
    else:
        oidc.status = 500
    response = _deliver(csv_source, "Bearer " + google_key.sign(_claims()))

    assert response.status_code == 503
    assert response.json() == {
        "message": "Google's signing certificates cannot be fetched; retry later.",
        "extra": {},
    }
    assert EtlRun.objects.count() == 0


def test_certs_refetched_when_not_cacheable(
    oidc: CertsServer, google_key: SigningKey, csv_source: DataSource
) -> None:
    """`Cache-Control: no-store` certs are fetched for every delivery."""
    oidc.cache_control = "no-store"
    for _ in range(2):
        assert _deliver(csv_source, "Bearer " + google_key.sign(_claims())).status_code == 202
    assert len(oidc.hits) == 2


def test_unknown_or_disabled_source_404(
    oidc: CertsServer, google_key: SigningKey, csv_source: DataSource
) -> None:
    token = "Bearer " + google_key.sign(_claims())
    DataSource.objects.filter(pk=csv_source.pk).update(enabled=False)
    disabled = _deliver(csv_source, token)
    assert disabled.status_code == 404
    assert disabled.json()["message"] == (
        f"Data source {csv_source.id} does not exist or is disabled."
    )
    csv_source.id = 9999
    assert _deliver(csv_source, token).status_code == 404
    assert EtlRun.objects.count() == 0


def test_not_configured_refuses(
    oidc: CertsServer, google_key: SigningKey, csv_source: DataSource, settings: Any
) -> None:
    """Without an allow-list every token is refused (401), so an unconfigured deployment is
    closed."""
    settings.SCHEDULER_OIDC_ALLOWED_EMAILS = []
    response = _deliver(csv_source, "Bearer " + google_key.sign(_claims()))
    assert response.status_code == 401
    assert response.json()["message"].startswith("Scheduler webhook is not configured")


def test_staff_token_cannot_use_webhook(
    oidc: CertsServer, staff_client: APIClient, csv_source: DataSource
) -> None:
    """The webhook accepts only scheduler ID tokens, not a staff user's API token."""
    response = staff_client.post(f"/api/etl/sources/{csv_source.id}/scheduler-webhook/")
    assert response.status_code == 401
    assert EtlRun.objects.count() == 0
