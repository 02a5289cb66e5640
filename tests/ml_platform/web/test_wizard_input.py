"""Every wizard step fed empty, wrong and hostile input answers 200 with the error next to the
field it names (or above the form), never a 500 and never a dead end; nothing is saved.

Field reports this guards against: a connection saved without a required parameter answering
500 instead of 400 (https://github.com/odahu/odahu-flow/issues/337), a connector form whose
save reports no field at all (https://github.com/nextgenhealthcare/connect/issues/365), and
previewing files whose schemas differ failing in `concat_tables` with `ArrowInvalid: Schema at
index 1 was different` (https://github.com/apache/arrow/issues/35424,
https://github.com/apache/arrow/issues/41931)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from ml_platform.contract import help_text
from ml_platform.models import Connection, DataSource
from ml_platform.services import connection_create
from ml_platform.web.forms_connection import SERVICE_ACCOUNT_INVALID
from tests.ml_platform.conftest import ORDERS_CSV

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(User.objects.create_user("ops", password="pw", is_staff=True))
    client.get("/etl/new/")
    return client


def field_errors(html: str, field: str) -> list[str]:
    """The messages listed under the field whose wrapper is `id="field-<field>"`."""
    match = re.search(
        rf'<div class="field" id="field-{re.escape(field)}".*?(?=<div class="field"|</form>)',
        html,
        re.S,
    )
    assert match, f"no field {field} on the page"
    return [unescape(m) for m in re.findall(r"<li>(.*?)</li>", match.group(0), re.S)]


def post(client: Client, url: str, data: dict) -> str:
    response = client.post(url, data)
    assert response.status_code == 200, (response.status_code, getattr(response, "url", ""))
    return response.content.decode()


def test_step_1_connection_input(staff: Client) -> None:
    """Nothing chosen, a non-number, an unknown id; an empty create form; per-type required
    fields; hostile values (null byte, port out of range, a javascript: URL, a non-JSON service
    account key that is not echoed back)."""
    url = "/etl/new/1-connection/"
    for chosen in ("", "abc", "999999", "1 OR 1=1"):
        page = post(staff, url, {"choose-connection": chosen, "action": "next"})
        errors = field_errors(page, "choose-connection")
        assert errors == (
            ["Choose a connection or create one below."]
            if chosen == ""
            else [f"Select a valid choice. {chosen} is not one of the available choices."]
        )
    page = post(staff, url, {"action": "create"})
    assert field_errors(page, "new-name") == ["This field is required."]
    assert field_errors(page, "new-type") == ["This field is required."]
    page = post(staff, url, {"action": "create", "new-name": "pg", "new-type": "postgresql"})
    for field in ("host", "database", "user"):
        assert field_errors(page, f"new-{field}") == [
            "This field is required for a postgresql connection."
        ]
    page = post(staff, url, {"action": "create", "new-name": "bq", "new-type": "bigquery",
                             "new-google_auth": "adc"})  # fmt: skip
    assert field_errors(page, "new-project") == [
        "This field is required for a bigquery connection."
    ]
    page = post(staff, url, {"action": "create", "new-name": "s3", "new-type": "s3",
                             "new-bucket": "b", "new-s3_auth": "keys",
                             "new-aws_access_key_id": "AKIA"})  # fmt: skip
    assert field_errors(page, "new-aws_secret_access_key") == [
        "Required with access-key credentials."
    ]
    page = post(staff, url, {"action": "create", "new-name": "az", "new-type": "azure_blob",
                             "new-container": "c", "new-azure_auth": "sas"})  # fmt: skip
    assert field_errors(page, "new-account_name") == [
        "Required with this kind of Azure credentials."
    ]
    assert field_errors(page, "new-sas_token") == ["Required with this kind of Azure credentials."]
    secret = '{"type": "service_account", "private_key": "-----BEGIN sekrit'
    page = post(staff, url, {"action": "create", "new-name": "g\x00cs", "new-type": "gcs",
                             "new-bucket": "b", "new-google_auth": "service_account",
                             "new-service_account_json": secret, "new-port": "70000",
                             "new-endpoint_url": "javascript:alert(1)"})  # fmt: skip
    assert field_errors(page, "new-name") == ["Null characters are not allowed."]
    assert field_errors(page, "new-endpoint_url") == ["Enter a valid URL."]
    assert field_errors(page, "new-port") == ["Ensure this value is less than or equal to 65535."]
    assert field_errors(page, "new-service_account_json") == [SERVICE_ACCOUNT_INVALID]
    assert "sekrit" not in page
    page = post(staff, url, {"action": "create", "new-name": "<script>alert(1)</script>",
                             "new-type": "bogus"})  # fmt: skip
    assert "<script>alert(1)</script>" not in page
    assert field_errors(page, "new-type") == [
        "Select a valid choice. bogus is not one of the available choices."
    ]
    assert post(staff, url, {"action": "save_anyway"}).count("Save anyway") == 0
    assert post(staff, url, {"action": "whatever"})
    assert not Connection.objects.exists()


def test_step_1_failed_test_offers_save_anyway(staff: Client) -> None:
    """A PostgreSQL connection that cannot be reached (port 1) is not saved; the reason is
    shown with "Save anyway"; choosing it saves the connection with its encrypted password."""
    url = "/etl/new/1-connection/"
    page = post(staff, url, {"action": "create", "new-name": "down", "new-type": "postgresql",
                             "new-host": "127.0.0.1", "new-port": "1", "new-database": "test",
                             "new-user": "postgres", "new-password": "hunter2-secret"})  # fmt: skip
    message = re.search(r'id="create-test-error">(.*?)</p>', page, re.S).group(1)
    assert message.startswith("The connection test failed: ")
    assert "Fix the fields, or save it anyway" in message and "hunter2" not in page
    assert not Connection.objects.exists()
    response = staff.post(url, {"action": "save_anyway"})
    assert response.status_code == 302
    connection = Connection.objects.get()
    assert (connection.name, connection.port) == ("down", 1)
    assert connection.credentials == '{"password": "hunter2-secret"}'


@pytest.fixture
def files_draft(staff: Client, tmp_path: Path) -> Path:
    """A local connection chosen in step 1 (folder with one CSV)."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "orders_1.csv").write_text(ORDERS_CSV)
    connection = connection_create(name="local", type="local", base_path=str(folder))
    response = staff.post(
        "/etl/new/1-connection/", {"choose-connection": connection.pk, "action": "next"}
    )
    assert response.status_code == 302
    return folder


CSV_STEP = {"file_prefix": "", "file_pattern": "*.csv", "file_format": "csv", "has_header": "on",
            "delimiter": ",", "encoding": "utf-8", "quote_char": '"', "action": "next"}  # fmt: skip


def test_step_2_files_input(staff: Client, files_draft: Path) -> None:
    """Empty form, unknown format, a two-character delimiter, an unknown encoding, a negative
    skip count, a prefix escaping the base path, a pattern matching nothing."""
    url = "/etl/new/2-source/"
    page = post(staff, url, {"action": "next"})
    assert field_errors(page, "file_pattern") == ["This field is required."]
    assert field_errors(page, "file_format") == ["This field is required."]
    page = post(staff, url, {**CSV_STEP, "file_format": "exe"})
    assert field_errors(page, "file_format") == [
        "Select a valid choice. exe is not one of the available choices."
    ]
    page = post(staff, url, {**CSV_STEP, "delimiter": ";;", "encoding": "klingon"})
    assert field_errors(page, "delimiter") == ["must be exactly one character"]
    assert field_errors(page, "encoding") == ["unknown encoding 'klingon'"]
    page = post(staff, url, {**CSV_STEP, "skip_rows": "-1"})
    assert field_errors(page, "skip_rows") == ["Ensure this value is greater than or equal to 0."]
    page = post(staff, url, {**CSV_STEP, "file_prefix": "../../../etc/"})
    error = unescape(re.search(r'id="step-error">(.*?)</p>', page, re.S).group(1))
    assert "file_prefix" in error and "../../../etc/" in error
    page = post(staff, url, {**CSV_STEP, "file_pattern": "*.parquet"})
    assert field_errors(page, "file_pattern") == ["No file matches this prefix and pattern."]


def test_step_3_preview_input(staff: Client, files_draft: Path) -> None:
    """Files with different columns preview as their union; a column whose types clash between
    files is an error above the (empty) table with the way back to step 2, not a 500 and not a
    dead Next button; posting no column or unknown columns is refused."""
    (files_draft / "orders_2.csv").write_text("id,note\n9,late\n")
    assert staff.post("/etl/new/2-source/", CSV_STEP).status_code == 302
    page = staff.get("/etl/new/3-preview/").content.decode()
    assert "→ <code>note</code>" in page and "→ <code>amount</code>" in page
    for columns in ([], ["nope", "<script>"]):
        page = post(staff, "/etl/new/3-preview/", {"columns": columns})
        assert "Select at least one column." in page
    (files_draft / "orders_2.csv").write_text("id,amount\nx9,not-a-number\n")
    response = staff.get("/etl/new/3-preview/")
    assert response.status_code == 200
    page = response.content.decode()
    error = unescape(re.search(r'id="step-error">(.*?)</p>', page, re.S).group(1))
    assert error.startswith("The previewed files have columns of incompatible types"), error
    assert 'id="back"' in page and 'id="next"' not in page


def _to_step_4(staff: Client) -> None:
    assert staff.post("/etl/new/2-source/", CSV_STEP).status_code == 302
    response = staff.post("/etl/new/3-preview/", {"columns": ["id", "customer", "amount"]})
    assert response.url == "/etl/new/4-destination/"


def test_steps_4_to_6_input(staff: Client, files_draft: Path, tmp_path: Path) -> None:
    """Destination: BigQuery without project or key, a hostile dataset, a non-URL endpoint, a
    DuckDB file in a missing folder (the test says so). Strategy: reserved and invalid table
    names, an unknown load type. Schedule: empty name, bad cron and time zone. Nothing is
    saved."""
    _to_step_4(staff)
    url = "/etl/new/4-destination/"
    page = post(staff, url, {"type": "bigquery", "dataset": "raw; DROP TABLE x",
                             "api_endpoint": "not a url", "google_auth": "service_account",
                             "action": "next"})  # fmt: skip
    assert field_errors(page, "api_endpoint") == ["Enter a valid URL."]
    page = post(staff, url, {"type": "bigquery", "dataset": "raw; DROP TABLE x",
                             "google_auth": "service_account", "action": "next"})  # fmt: skip
    assert field_errors(page, "project") == ["Required for a BigQuery destination."]
    assert field_errors(page, "service_account_file") == [
        "Upload or paste a service-account JSON key."
    ]
    assert field_errors(page, "dataset") == [
        "must be letters, digits and underscores, not starting with a digit"
    ]
    page = post(staff, url, {"type": "duckdb", "dataset": "raw_data",
                             "path": str(tmp_path / "missing" / "w.duckdb"),
                             "action": "test"})  # fmt: skip
    result = unescape(re.search(r'id="test-result" class="error">(.*?)</p>', page, re.S).group(1))
    assert result.startswith(f"Folder {tmp_path / 'missing'} does not exist.")
    response = staff.post(url, {"type": "duckdb", "dataset": "raw_data", "action": "next"})
    assert response.url == "/etl/new/5-strategy/"

    url = "/etl/new/5-strategy/"
    base = {"load_type": "transactional", "on_bad_rows": "fail", "dest_table_name": "orders"}
    page = post(staff, url, {**base, "dest_table_name": "_etl_loads"})
    assert field_errors(page, "dest_table_name") == [
        "Table names starting with `_etl_` are reserved for ETL Runner's own tables (load log, "
        "staging)."
    ]
    page = post(staff, url, {**base, "dest_table_name": "x`; DROP TABLE y; --"})
    (message,) = field_errors(page, "dest_table_name")
    assert message.startswith("Invalid job config: `dest_table_name`")
    page = post(staff, url, {**base, "load_type": "bogus", "on_bad_rows": "maybe"})
    assert field_errors(page, "load_type") == [
        "Select a valid choice. bogus is not one of the available choices."
    ]
    assert field_errors(page, "on_bad_rows") == [
        "Select a valid choice. maybe is not one of the available choices."
    ]
    assert staff.post(url, base).url == "/etl/new/6-schedule/"

    url = "/etl/new/6-schedule/"
    page = post(staff, url, {"name": "", "schedule_timezone": "", "action": "save"})
    assert field_errors(page, "name") == ["This field is required."]
    assert field_errors(page, "schedule_timezone") == ["This field is required."]
    page = post(staff, url, {"name": "o", "schedule_cron": "* * *", "schedule_timezone": "UTC",
                             "action": "save"})  # fmt: skip
    assert field_errors(page, "schedule_cron") == [
        "Expected five cron fields (minute hour day month weekday): got 3 field(s)."
    ]
    page = post(staff, url, {"name": "o", "schedule_cron": "0 6 * * *",
                             "schedule_timezone": "Mars/Olympus", "action": "save"})  # fmt: skip
    (message,) = field_errors(page, "schedule_timezone")
    assert "Mars/Olympus" in message
    assert not DataSource.objects.exists()


def test_later_steps_without_a_draft_redirect(staff: Client) -> None:
    """Opening or posting a later step with no draft (a new session, a bookmarked URL) goes
    back to step 1 instead of failing."""
    for step in ("2-source", "3-preview", "4-destination", "5-strategy", "6-schedule"):
        assert staff.get(f"/etl/new/{step}/").url == "/etl/new/1-connection/"
        assert staff.post(f"/etl/new/{step}/", {"x": "1"}).url == "/etl/new/1-connection/"


def test_wizard_refuses_an_owned_table_and_defaults_to_a_free_name(
    staff: Client, files_draft: Path
) -> None:
    """With `orders` owned by another source, step 5 proposes `orders_2` and refuses `orders`
    with the owner named (https://github.com/airbytehq/airbyte/issues/16173)."""
    owner = DataSource.objects.create(
        name="the owner", connection=Connection.objects.get(), dest_table_name="orders"
    )
    (files_draft / "orders_1.csv").rename(files_draft / "orders.csv")
    step = {**CSV_STEP, "file_pattern": "orders.csv"}
    assert staff.post("/etl/new/2-source/", step).status_code == 302
    assert staff.post("/etl/new/3-preview/", {"columns": ["id"]}).status_code == 302
    staff.post("/etl/new/4-destination/", {"type": "duckdb", "dataset": "raw_data",
                                           "action": "next"})  # fmt: skip
    page = staff.get("/etl/new/5-strategy/").content.decode()
    assert 'name="dest_table_name" value="orders_2"' in page
    page = post(staff, "/etl/new/5-strategy/", {"load_type": "catalog", "on_bad_rows": "fail",
                                                "dest_table_name": "orders"})  # fmt: skip
    (message,) = field_errors(page, "dest_table_name")
    assert message.startswith("Destination table orders in raw_data of DuckDB file ")
    assert message.endswith(f"belongs to data source 'the owner' (id {owner.pk}); choose "
                            "another table name or dataset.")  # fmt: skip
    assert list(DataSource.objects.values_list("name", flat=True)) == ["the owner"]


def test_step_5_table_source_input(staff: Client, pg_events_table: str) -> None:
    """A PostgreSQL table: transactional without a cursor, a negative, non-numeric, NaN or
    infinite look-back, a cursor or key that is not a column, an initial value the cursor type
    cannot hold: each named at its field."""
    connection = connection_create(
        name="pg", type="postgresql", host="127.0.0.1", port=5432, database="test",
        user="postgres",
    )  # fmt: skip
    staff.post("/etl/new/1-connection/", {"choose-connection": connection.pk, "action": "next"})
    schema = pg_events_table.split(".")[0]
    response = staff.post(
        f"/etl/new/2-source/?schema={schema}",
        {"source_table_name": pg_events_table, "action": "next"},
    )
    assert response.url == "/etl/new/3-preview/"
    columns = ["id", "kind", "value", "updated_at"]
    assert staff.post("/etl/new/3-preview/", {"columns": columns}).status_code == 302
    staff.post("/etl/new/4-destination/", {"type": "duckdb", "dataset": "raw_data",
                                           "action": "next"})  # fmt: skip
    url = "/etl/new/5-strategy/"
    base = {"load_type": "transactional", "on_bad_rows": "fail", "dest_table_name": "events",
            "null_cursor": "fail", "cursor_lag_seconds": "0",
            "timestamp_column": "updated_at"}  # fmt: skip
    page = post(staff, url, {**base, "timestamp_column": ""})
    assert field_errors(page, "timestamp_column") == [
        "A transactional or merge table load needs a cursor column."
    ]
    page = post(staff, url, {**base, "cursor_lag_seconds": "-5"})
    assert field_errors(page, "cursor_lag_seconds") == [
        "Ensure this value is greater than or equal to 0."
    ]
    for bad in ("abc", "nan", "inf"):
        page = post(staff, url, {**base, "cursor_lag_seconds": bad})
        assert field_errors(page, "cursor_lag_seconds") == ["Enter a number."]
    page = post(staff, url, {**base, "timestamp_column": "kind", "primary_key": ["nope"]})
    assert field_errors(page, "timestamp_column") == [
        "Select a valid choice. kind is not one of the available choices."
    ]
    assert field_errors(page, "primary_key") == [
        "Select a valid choice. nope is not one of the available choices."
    ]
    page = post(staff, url, {**base, "initial_value": "yesterday-ish"})
    assert field_errors(page, "initial_value") == [
        "initial_value 'yesterday-ish' is not a date/time value of the cursor column "
        "(timestamp[us, tz=UTC]); use ISO 8601, e.g. 2024-03-02T00:00:00Z."
    ]
    page = post(staff, url, {**base, "parallelism": "0"})
    assert field_errors(page, "parallelism") == ["Ensure this value is greater than or equal to 1."]
    page = post(staff, url, {**base, "parallelism": "65"})
    assert field_errors(page, "parallelism") == ["Ensure this value is less than or equal to 64."]
    assert unescape(help_text(DataSource, "parallelism")) in unescape(page)
    response = staff.post(url, {**base, "primary_key": ["id"], "cursor_lag_seconds": "3600",
                                "initial_value": "2024-03-02T00:00:00Z",
                                "parallelism": "4"})  # fmt: skip
    assert response.url == "/etl/new/6-schedule/"
    assert staff.session["etl_wizard"]["parallelism"] == 4


SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "p1",
    "client_email": "loader@p1.iam.gserviceaccount.com",
    "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-real-key-zzq\n-----END PRIVATE KEY-----\n",
}


def test_service_account_upload_is_stored_encrypted_never_shown(
    staff: Client, files_draft: Path
) -> None:
    """A GCS connection with an uploaded service-account file: its (fake) key fails the test,
    "Save anyway" stores it encrypted; a BigQuery destination key uploaded in step 4 is kept
    sealed in the session. The key text never appears in a page or the session in clear."""
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    from ml_platform.web.wizard import PENDING_CONNECTION, SESSION_KEY

    key = json.dumps(SERVICE_ACCOUNT).encode()
    page = post(staff, "/etl/new/1-connection/", {
        "action": "create", "new-name": "gcs", "new-type": "gcs", "new-bucket": "b",
        "new-google_auth": "service_account",
        "new-service_account_file": SimpleUploadedFile("sa.json", key, "application/json"),
    })  # fmt: skip
    assert "The connection test failed: " in page and "not-a-real-key-zzq" not in page
    assert "not-a-real-key-zzq" not in str(dict(staff.session))
    assert staff.session[PENDING_CONNECTION]
    assert staff.post("/etl/new/1-connection/", {"action": "save_anyway"}).status_code == 302
    connection = Connection.objects.get(name="gcs")
    assert json.loads(connection.credentials) == {"credentials": SERVICE_ACCOUNT}
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM ml_platform_connection WHERE name = 'gcs'")
        (stored,) = cursor.fetchone()
    assert "not-a-real-key-zzq" not in stored and "loader@p1" not in stored

    local = Connection.objects.get(name="local")
    staff.post("/etl/new/1-connection/", {"choose-connection": local.pk, "action": "next"})
    _to_step_4(staff)
    response = staff.post("/etl/new/4-destination/", {
        "type": "bigquery", "project": "p1", "dataset": "raw", "google_auth": "service_account",
        "service_account_file": SimpleUploadedFile("sa.json", key), "action": "next",
    })  # fmt: skip
    assert response.status_code == 302
    draft = staff.session[SESSION_KEY]
    assert draft["destination"] == {"type": "bigquery", "dataset": "raw", "project": "p1"}
    assert "not-a-real-key-zzq" not in str(dict(staff.session))
    assert draft["destination_credentials"]


def test_editing_keeps_file_options_the_form_does_not_show(staff: Client, tmp_path: Path) -> None:
    """A source made through the API with `decimal_point` and `column_types` (options the
    wizard has no field for) keeps them when edited in the wizard: before, step 2 rebuilt the
    options from its own fields, and after a reset `amount` loaded as VARCHAR '1,5' instead of
    DECIMAL(10,2) 1.50. A new source's "Quoted fields may span lines" starts ticked, as the
    config contract's default is true."""
    from ml_platform.services import data_source_create
    from ml_platform.web.wizard import SESSION_KEY

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "semi.csv").write_text("id;amount\n1;1,50\n2;2,25\n")
    connection = connection_create(name="semi", type="local", base_path=str(folder))
    options = {
        "delimiter": ";",
        "decimal_point": ",",
        "column_types": {"amount": "decimal(10,2)"},
        "null_values": [""],
    }
    source = data_source_create(
        name="semi", connection=connection, dest_table_name="semi", file_pattern="*.csv",
        file_format="csv", file_format_options=options,
    )  # fmt: skip

    assert staff.get(f"/etl/sources/{source.pk}/edit/").status_code == 302
    step = {**CSV_STEP, "delimiter": ";", "allow_quoted_newlines": "on"}
    assert staff.post("/etl/new/2-source/", step).status_code == 302

    kept = staff.session[SESSION_KEY]["file_format_options"]
    assert (kept["delimiter"], kept["decimal_point"], kept["column_types"]) == (
        ";",
        ",",
        {"amount": "decimal(10,2)"},
    )
    assert forms_files_initial()["allow_quoted_newlines"] is True


def forms_files_initial() -> dict:
    """Initial values of an empty step-2 files form (a new source)."""
    from ml_platform.web.forms import FilesForm

    form = FilesForm()
    return {name: form.get_initial_for_field(form.fields[name], name) for name in form.fields}
