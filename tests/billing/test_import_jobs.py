"""A large history file uploaded in the console is imported in the background: the upload is
stored with a job, a task imports it after the commit, and the page shows its progress and then
the same result as a small file gets at once. Only the uploader (or staff) sees a job; a job is
imported once however often its task runs; a job whose worker died shows as stopped; a file over
the limit is refused with a plain message before it is stored."""

import csv
import io
import time
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from accounts.demo import user_ensure
from accounts.models import User
from accounts.roles import MARKETER
from billing import console_views
from billing.imports import COLUMNS, jobs
from billing.models import ImportJob
from config.celery import app
from tests.config.test_celery_worker import worker_queue  # noqa: F401 (a fixture, used below)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = "/console/imports/"
GOOD = ["c-1,ann@example.com,2024-01-01T00:00:00Z,DE", "c-2,bob@example.com,2024-01-01T00:00:00Z,"]


def content(kind: str, *rows: str) -> bytes:
    return "\n".join((",".join(COLUMNS[kind]), *rows)).encode() + b"\n"


def upload(client, kind: str, *rows: str, skip_invalid=False, data: bytes | None = None):
    data = content(kind, *rows) if data is None else data
    fields = {"kind": kind, "file": SimpleUploadedFile(f"{kind}.csv", data, content_type="text/csv")}
    if skip_invalid:
        fields["skip_invalid"] = "on"
    return client.post(URL, fields)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def background(monkeypatch):
    """Every upload goes to the background, however small."""
    monkeypatch.setattr(console_views, "INLINE_MAX", 0)


@pytest.fixture
def console(client, marketer):
    client.force_login(marketer)
    return client


def stored_files(media) -> list:
    return [path for path in media.rglob("*") if path.is_file()]


def test_a_large_file_is_imported_in_the_background_and_its_page_shows_the_result(
    console, background, media, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = upload(console, "customers", *GOOD)

    assert len(queued) == 1  # the task was queued after the commit
    job = ImportJob.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"{URL}?job={job.pk}"
    assert (job.status, job.kind, job.file_name, job.attempts) == ("done", "customers", "customers.csv", 1)
    assert User.objects.filter(external_id__in=["c-1", "c-2"]).count() == 2
    assert not stored_files(media), "the uploaded file is deleted once imported"

    page = console.get(response["Location"])

    assert page.status_code == 200
    text = page.content.decode()
    assert "2 new, 0 already there" in text
    assert "import_job.js" not in text  # nothing left to poll
    assert page.context["result"].created == 2
    listed = console.get(URL).content.decode()
    assert f'href="?job={job.pk}"' in listed


def test_a_refused_file_shows_its_errors_and_the_whole_list_downloads(
    console, background, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(jobs, "SHOWN_ERRORS", 3)
    rows = [f"c-{i},not-an-email-{i},2024-01-01T00:00:00Z," for i in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(console, "customers", *rows, "c-9,=HYPERLINK(1)@example.com,2024-01-01T00:00:00Z,")

    page = console.get(response["Location"])

    text = page.content.decode()
    assert "6 of 6 rows are not valid, so nothing was imported" in text
    assert [error.row for error in page.context["errors"]] == [2, 3, 4]
    assert "The first 3 are shown; 3 more are in the download." in text
    job = ImportJob.objects.get()
    assert f'href="?job={job.pk}&amp;download=errors"' in text
    download = console.get(URL, {"job": job.pk, "download": "errors"})
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in download["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert lines[0] == ["line", "field", "message"]
    assert [line[0] for line in lines[1:]] == ["2", "3", "4", "5", "6", "7"]
    assert not User.objects.filter(external_id__isnull=False).exists()


def test_lines_are_counted_as_in_the_file_even_with_a_carriage_return_inside_quotes(
    console, background, django_capture_on_commit_callbacks
):
    rows = ['c-1,ann@example.com,2024-01-01T00:00:00Z,"X\rY"', "c-2,bob@example.com,2024-01-01T00:00:00Z,XX"]
    with django_capture_on_commit_callbacks(execute=True):
        upload(console, "customers", *rows)

    job = ImportJob.objects.get()
    assert [(row, field) for row, field, _ in job.result["errors"]] == [(2, "country"), (3, "country")]


def test_the_page_polls_a_small_json_state_while_the_job_waits(console, background):
    upload(console, "customers", *GOOD)  # the commit never comes: the task is not run
    job = ImportJob.objects.get()

    page = console.get(URL, {"job": job.pk})
    state = console.get(URL, {"job": job.pk, "format": "json"})

    text = page.content.decode()
    assert '<progress id="import-progress" max="100"' in text
    assert f'data-status-url="?job={job.pk}&amp;format=json"' in text
    assert "js/import_job.js" in text and "<script>" not in text  # static, no inline script
    assert state.json() == {
        "status": "queued",
        "finished": False,
        "percent": None,
        "read": 0,
        "size": job.size,
        "age_seconds": state.json()["age_seconds"],
    }


def test_a_job_waiting_too_long_says_no_worker_has_taken_it(console, background):
    upload(console, "customers", *GOOD)
    ImportJob.objects.update(created_at=timezone.now() - jobs.WAITING_TOO_LONG - timedelta(minutes=1))

    page = console.get(URL, {"job": ImportJob.objects.get().pk})

    assert "No worker has started this import in 11" in page.content.decode()


def test_only_the_uploader_and_staff_see_a_job(console, background, client, operator):
    upload(console, "customers", *GOOD)
    job = ImportJob.objects.get()
    other = user_ensure(email="max.marketer@example.com", password=PASSWORD, role=MARKETER)

    client.force_login(other)
    for query in ({"job": job.pk}, {"job": job.pk, "format": "json"}, {"job": job.pk, "download": "errors"}):
        assert client.get(URL, query).status_code == 404
    assert client.get(URL, {"job": "nonsense"}).status_code == 404
    assert f"?job={job.pk}" not in client.get(URL).content.decode()
    client.force_login(operator)
    assert client.get(URL, {"job": job.pk}).status_code == 200


def test_a_job_is_imported_once_however_often_its_task_runs(console, background):
    upload(console, "customers", *GOOD)
    job = ImportJob.objects.get()

    first = jobs.import_job_run(job_pk=job.pk, at=timezone.now())
    again = jobs.import_job_run(job_pk=job.pk, at=timezone.now())

    assert (first, again) == ("done", None)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result["counts"]["created"]) == ("done", 1, 2)


def test_a_job_whose_worker_died_shows_as_stopped_and_a_second_delivery_takes_it(console, background):
    upload(console, "customers", *GOOD)
    job = ImportJob.objects.get()
    started = timezone.now() - jobs.LEASE - timedelta(minutes=1)
    # As a worker leaves it when it dies mid-import: running, nothing written, the lease running.
    ImportJob.objects.filter(pk=job.pk).update(
        status="running", attempts=1, started_at=started, lease_until=started + jobs.LEASE
    )
    assert jobs.import_job_run(job_pk=job.pk, at=started + timedelta(minutes=5)) is None  # the claim is live

    page = console.get(URL, {"job": job.pk})

    assert page.context["state"].status == "stopped"
    assert "This import stopped: the worker running it was lost" in page.content.decode()
    assert jobs.import_job_run(job_pk=job.pk, at=timezone.now()) == "done"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("done", 2)
    assert User.objects.filter(external_id__in=["c-1", "c-2"]).count() == 2


def test_a_job_whose_file_is_gone_fails_visibly_and_writes_nothing(console, background):
    upload(console, "customers", *GOOD)
    job = ImportJob.objects.get()
    default_storage.delete(job.file.name)

    assert jobs.import_job_run(job_pk=job.pk, at=timezone.now()) == "failed"

    job.refresh_from_db()
    assert job.status == "failed" and "FileNotFoundError" in job.error
    assert "This import failed, and nothing of it was written" in console.get(URL, {"job": job.pk}).content.decode()
    assert not User.objects.filter(external_id__isnull=False).exists()


def test_a_small_file_is_still_imported_at_once(console, media):
    response = upload(console, "customers", *GOOD)

    assert response.status_code == 200
    assert response.context["result"].created == 2
    assert not ImportJob.objects.exists() and not stored_files(media)


def test_a_file_over_the_limit_is_refused_with_the_limit_and_nothing_is_stored(console, background, media, monkeypatch):
    monkeypatch.setattr(console_views, "MAX_UPLOAD", 1000)
    data = content("customers", *[f"c-{i},c{i}@example.com,2024-01-01T00:00:00Z," for i in range(50)])
    assert len(data) > 1000

    response = upload(console, "customers", data=data)

    assert response.status_code == 400
    assert response.context["form"].errors["file"] == [
        "The file is larger than 1000\xa0bytes. Split it into smaller files, or ask an operator to run "
        "manage.py import_history."
    ]
    assert not ImportJob.objects.exists() and not stored_files(media)
    assert not User.objects.filter(external_id__isnull=False).exists()


def test_the_page_states_the_size_limit(console):
    text = console.get(URL).content.decode()

    assert "Files up to 200.0\xa0MB." in text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_progress_is_recorded_while_the_import_runs(marketer):
    rows = [f"c-{i},customer{i}@example.com,2024-01-01T00:00:00Z,DE" for i in range(40_000)]
    data = content("customers", *rows)
    assert len(data) > 2 << 20  # progress is reported for each megabyte read
    job = jobs.import_job_create(
        kind="customers",
        upload=SimpleUploadedFile("customers.csv", data),
        file_name="customers.csv",
        skip_invalid=False,
        user=marketer,
        at=timezone.now(),
    )  # not in a transaction: queued (and, eagerly, run) at once
    assert connection.vendor == "postgresql"

    job.refresh_from_db()
    assert job.status == "done"
    assert (job.progress, job.size) == (len(data), len(data))  # written from its own connection
    assert job.progress_at is not None
    assert User.objects.filter(external_id__startswith="c-").count() == 40_000


@pytest.fixture
def worker_shares_this_database(monkeypatch, settings, tmp_path):
    """The worker started by worker_queue reads the test database and the test's MEDIA_ROOT."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        url = f"sqlite:///{db['NAME']}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MEDIA_ROOT", str(tmp_path))


@pytest.fixture
def fresh_router():
    """Celery builds its router from task_routes once and keeps it: build it anew for a test that
    routes a task to its worker's queue, and again afterwards, for the tests that come after."""

    def forget():
        app.amqp.__dict__.pop("router", None)
        app.amqp._rtable = None

    forget()
    yield
    forget()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_an_uploaded_file(
    worker_shares_this_database, fresh_router, marketer, monkeypatch, request
):
    queue, _mail, worker = request.getfixturevalue("worker_queue")  # started once the database is shared
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "task_routes", {"billing.tasks.history_import_job_task": {"queue": queue}})

    job = jobs.import_job_create(
        kind="customers",
        upload=SimpleUploadedFile("customers.csv", content("customers", *GOOD)),
        file_name="customers.csv",
        skip_invalid=False,
        user=marketer,
        at=timezone.now(),
    )

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ImportJob.objects.get(pk=job.pk).status in ("queued", "running"):
        assert worker.poll() is None, worker.stdout.read()
        time.sleep(0.2)

    job.refresh_from_db()
    assert job.status == "done", f"the worker did not finish the import within 60 s ({job.status}: {job.error})"
    assert job.result["counts"]["created"] == 2
    assert User.objects.filter(external_id__in=["c-1", "c-2"]).count() == 2
