"""An operator imports history files with `manage.py import_history`: a progress bar on stderr,
every bad row with its line, a summary, and an exit status that says whether anything was
written."""

import io
import sys

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError

from accounts.models import User
from billing.imports import COLUMNS
from billing.models import Purchase
from tests import factories
from trials.models import Assignment, Trial

pytestmark = pytest.mark.django_db

CUSTOMERS = [
    "c-1,ann@example.com,2024-03-01T10:00:00+01:00,DE",
    "c-2,bob@example.com,2024-03-02T10:00:00Z,",
]
PURCHASES = [
    "o-1,c-1,beans-1kg,regular,24.00,EUR,2026-06-01T10:00:00+02:00,",
    "r-1,c-1,beans-1kg,regular,-4.00,EUR,2026-06-03T10:00:00+02:00,o-1",
]


def write(tmp_path, kind: str, *rows: str) -> str:
    path = tmp_path / f"{kind}.csv"
    path.write_text("\n".join((",".join(COLUMNS[kind]), *rows)) + "\n", encoding="utf-8")
    return str(path)


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command("import_history", *args, stdout=out, progress=False, **options)
    return out.getvalue()


def exit_status(*argv: str) -> int:
    """What the shell would see, run the way manage.py runs it."""
    try:
        ManagementUtility(["manage.py", "import_history", *argv, "--no-progress"]).execute()
    except SystemExit as exc:
        return exc.code
    return 0


def test_an_operator_imports_customers_then_purchases(tmp_path):
    factories.product()

    customers = run("customers", write(tmp_path, "customers", *CUSTOMERS))
    purchases = run("purchases", write(tmp_path, "purchases", *PURCHASES))

    assert customers.strip() == "customers: 2 created, 0 attached to existing accounts, 0 unchanged, 0 invalid (done)."
    assert purchases.strip() == "purchases: 2 created, 0 unchanged, 0 invalid, 0 trials converted (done)."
    assert User.objects.filter(external_id__in=["c-1", "c-2"]).count() == 2
    assert sorted(Purchase.objects.values_list("external_id", "amount", "source")) == [
        ("o-1", 2400, "import"),
        ("r-1", -400, "import"),
    ]


def test_running_it_twice_changes_nothing(tmp_path):
    path = write(tmp_path, "customers", *CUSTOMERS)
    run("customers", path)

    again = run("customers", path)

    assert "0 created, 0 attached to existing accounts, 2 unchanged, 0 invalid (done)." in again
    assert User.objects.count() == 2


def test_assignments_go_into_an_offer_of_any_status(tmp_path):
    product = factories.product()
    factories.offer(product_=product)  # a draft
    run("customers", write(tmp_path, "customers", *CUSTOMERS))

    output = run(
        "assignments",
        write(
            tmp_path,
            "assignments",
            "c-1,coffee-sampler,default,2026-06-01T09:00:00Z,2026-06-01T09:05:00Z,2026-06-15T09:05:00Z,expired,",
            "c-2,coffee-sampler,holdout,2026-06-01T09:00:00Z,,,,",
        ),
    )

    assert "assignments: 2 created, 0 unchanged, 0 invalid, 1 trials (done)." in output
    assert Assignment.objects.count() == 2
    assert Trial.objects.get().status == "expired"


def test_every_bad_row_is_printed_with_its_line_and_nothing_is_written(tmp_path):
    path = write(
        tmp_path,
        "customers",
        "c-1,ann@example.com,2024-03-01T10:00:00+01:00,DE",
        "c-2,not-an-email,2024-03-02T10:00:00,",
        "c-3,cleo@example.com,2024-03-02T10:00:00Z,Mars",
    )
    out = io.StringIO()

    with pytest.raises(CommandError, match="Nothing was written: 2 rows are not valid") as refused:
        call_command("import_history", "customers", path, stdout=out, progress=False)

    lines = out.getvalue().splitlines()
    assert lines[0] == "line 3, email: “not-an-email” is not an email address."
    assert lines[1].startswith("line 3, created_at: “2024-03-02T10:00:00” has no offset")
    assert lines[2].startswith("line 4, country: “MARS” is not a country code")
    assert lines[3] == "customers: 0 created, 0 attached to existing accounts, 0 unchanged, 2 invalid (refused, " + (
        "nothing was written)."
    )
    assert "--skip-invalid" in str(refused.value)
    assert not User.objects.exists()


def test_with_skip_invalid_the_valid_rows_are_written_and_the_errors_can_be_saved(tmp_path):
    path = write(tmp_path, "customers", CUSTOMERS[0], "c-2,not-an-email,2024-03-02T10:00:00Z,")
    errors = tmp_path / "errors.csv"

    output = run("customers", path, "--skip-invalid", "--errors", str(errors))

    assert "1 created, 0 attached to existing accounts, 0 unchanged, 1 invalid (done)." in output
    assert errors.read_text(encoding="utf-8").splitlines() == [
        "line,field,message",
        "3,email,“not-an-email” is not an email address.",
    ]
    assert list(User.objects.values_list("external_id", flat=True)) == ["c-1"]


@pytest.mark.django_db(transaction=True)  # manage.py closes the connection when a command ends
def test_the_exit_status_says_whether_the_import_was_refused(tmp_path, capsys):
    good = write(tmp_path, "customers", *CUSTOMERS)
    bad = str(tmp_path / "bad.csv")
    (tmp_path / "bad.csv").write_bytes(
        "external_id,email,created_at,country\nc-9,zoë@example.com,x,\n".encode("latin-1")
    )

    assert exit_status("customers", good) == 0
    assert exit_status("customers", bad) == 1
    assert exit_status("customers", bad, "--skip-invalid") == 1  # a file that is not UTF-8 is refused whole
    assert exit_status("customers", str(tmp_path / "missing.csv")) == 1
    captured = capsys.readouterr()
    assert "file is not UTF-8: line 2" in captured.out
    assert "There is no file" in captured.err


def test_a_wrong_header_is_reported_on_line_1(tmp_path):
    path = tmp_path / "purchases.csv"
    path.write_text("external_id,customer,sku,amount\n", encoding="utf-8")
    out = io.StringIO()

    with pytest.raises(CommandError, match="could not be imported"):
        call_command("import_history", "purchases", str(path), stdout=out, progress=False)

    assert out.getvalue().startswith("line 1: The header is not right: it lacks customer_external_id")


def test_the_progress_bar_goes_to_stderr(tmp_path, capsys):
    path = write(tmp_path, "customers", *CUSTOMERS)

    call_command("import_history", "customers", path, stdout=io.StringIO())

    captured = capsys.readouterr()
    assert "customers" in captured.err and "B/s" in captured.err
    assert captured.out == ""


def test_it_reads_standard_input(tmp_path, monkeypatch):
    text = "\n".join((",".join(COLUMNS["customers"]), *CUSTOMERS)) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))

    assert "2 created" in run("customers", "-")
