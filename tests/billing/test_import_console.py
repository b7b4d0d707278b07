"""A marketer uploads history in the console at /console/imports/ and sees what happened to every
row: the counts, each bad row with its line and reason, and the whole list as a CSV download."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from billing import console_views
from billing.imports import COLUMNS
from billing.models import Purchase
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/console/imports/"


def upload(client, kind: str, *rows: str, skip_invalid=False, content: bytes | None = None):
    if content is None:
        content = "\n".join((",".join(COLUMNS[kind]), *rows)).encode() + b"\n"
    data = {"kind": kind, "file": SimpleUploadedFile(f"{kind}.csv", content, content_type="text/csv")}
    if skip_invalid:
        data["skip_invalid"] = "on"
    return client.post(URL, data)


@pytest.fixture
def console(client, marketer):
    client.force_login(marketer)
    return client


def test_the_page_offers_the_three_kinds_and_shows_each_files_header(console):
    response = console.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    for kind in ("customers", "purchases", "assignments"):
        assert f'value="{kind}"' in page
        assert ",<wbr>".join(COLUMNS[kind]) in page
    assert 'type="file"' in page and 'name="skip_invalid"' in page
    assert 'enctype="multipart/form-data"' in page
    assert 'href="/console/imports/" aria-current="page"' in page


def test_a_marketer_imports_customers_and_sees_the_counts(console):
    response = upload(
        console, "customers", "c-1,ann@example.com,2024-01-01T00:00:00Z,DE", "c-2,bob@example.com,2024-01-01T00:00:00Z,"
    )

    assert response.status_code == 200
    assert response.context["result"].created == 2
    assert "2 new, 0 already there" in response.content.decode()
    assert User.objects.filter(external_id__isnull=False).count() == 2


def test_uploading_the_same_file_twice_changes_nothing(console):
    rows = ["c-1,ann@example.com,2024-01-01T00:00:00Z,DE"]
    upload(console, "customers", *rows)

    response = upload(console, "customers", *rows)

    assert "0 new, 1 already there" in response.content.decode()
    assert User.objects.filter(external_id="c-1").count() == 1


def test_a_file_with_bad_rows_is_refused_with_each_row_and_its_line(console):
    factories.product()
    User.objects.create_user(email="ann@example.com", external_id="c-1")

    response = upload(
        console,
        "purchases",
        "o-1,c-1,beans-1kg,regular,24.00,EUR,2026-06-01T10:00:00+02:00,",
        "o-2,c-404,beans-1kg,regular,24.00,EUR,2026-06-01T10:00:00+02:00,",
        "o-3,c-1,beans-1kg,regular,-1.00,EUR,2026-06-01T10:00:00,",
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "2 of 3 rows are not valid, so nothing was imported" in page
    assert [(e.row, e.field) for e in response.context["errors"]] == [
        (3, "customer_external_id"),
        (4, "amount"),
        (4, "purchased_at"),
    ]
    assert "There is no customer with the external id “c-404”" in page
    assert not Purchase.objects.exists()


def test_the_skip_invalid_box_imports_the_valid_rows(console):
    response = upload(
        console,
        "customers",
        "c-1,ann@example.com,2024-01-01T00:00:00Z,DE",
        "c-2,bob@example.com,yesterday,",
        skip_invalid=True,
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "1 new, 0 already there" in page
    assert "1 row was not valid and was left out." in page
    assert list(User.objects.filter(external_id__isnull=False).values_list("external_id", flat=True)) == ["c-1"]


def test_a_long_error_list_is_cut_on_screen_and_whole_in_the_download(console, monkeypatch):
    monkeypatch.setattr(console_views, "SHOWN_ERRORS", 3)
    rows = [f"c-{i},not-an-email-{i},2024-01-01T00:00:00Z," for i in range(5)]

    response = upload(console, "customers", *rows)

    page = response.content.decode()
    assert len(response.context["errors"]) == 3
    assert "The first 3 are shown; 2 more are in the download." in page
    token = response.context["errors_token"]
    assert f'href="?errors={token}"' in page
    download = console.get(URL, {"errors": token})
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in download["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(download.content.decode())))
    assert lines[0] == ["line", "field", "message"]
    assert [line[0] for line in lines[1:]] == ["2", "3", "4", "5", "6"]


def test_the_error_list_is_only_for_the_marketer_who_uploaded(console, client, operator):
    response = upload(console, "customers", "c-1,not-an-email,2024-01-01T00:00:00Z,")
    token = response.context["errors_token"]
    client.force_login(operator)

    assert client.get(URL, {"errors": token}).status_code == 404
    assert client.get(URL, {"errors": "no-such-list"}).status_code == 404


def test_a_file_that_is_not_utf8_is_explained(console):
    content = "external_id,email,created_at,country\nc-1,zoë@example.com,2024-01-01T00:00:00Z,\n".encode("latin-1")

    response = upload(console, "customers", content=content, skip_invalid=True)

    assert response.status_code == 400
    page = response.content.decode()
    assert "The file could not be imported" in page
    assert "The file is not UTF-8: line 2" in page


def test_without_a_file_or_kind_the_form_says_so(console):
    response = console.post(URL, {"kind": "invoices"})

    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"kind", "file"}


def test_executives_may_not_import(client, executive):
    client.force_login(executive)

    assert client.get(URL).status_code == 403
    assert upload(client, "customers", "c-1,ann@example.com,2024-01-01T00:00:00Z,").status_code == 403
    assert not User.objects.filter(external_id="c-1").exists()


def test_purchases_and_assignments_are_uploaded_the_same_way(console):
    beans = factories.product()
    factories.offer(product_=beans)
    upload(console, "customers", "c-1,ann@example.com,2024-01-01T00:00:00Z,DE")

    assignments = upload(
        console,
        "assignments",
        "c-1,coffee-sampler,default,2026-06-01T09:00:00Z,2026-06-01T09:05:00Z,2026-06-15T09:05:00Z,pending,",
    )
    purchases = upload(console, "purchases", "o-1,c-1,beans-1kg,regular,24.00,EUR,2026-06-03T10:00:00+02:00,")

    assert (assignments.status_code, purchases.status_code) == (200, 200)
    assert assignments.context["result"].trials == 1
    assert purchases.context["result"].converted == 1
    assert "Trials converted" in purchases.content.decode()
    assert Purchase.objects.get().source == "import"
