"""A CSV file we write opens in a spreadsheet as the text it holds: no cell runs as a formula."""

import csv
import io

import pytest

from config.csv import Writer, csv_text


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://example.com","x")', "-"],
)
def test_text_a_spreadsheet_would_run_is_written_as_text(value):
    text = csv_text(["message"], [[value]])

    assert list(csv.reader(io.StringIO(text))) == [["message"], ["'" + value]]


@pytest.mark.parametrize("value", ["plain", "“=1” is not an amount", "a=b", " =1", "", "12.50"])
def test_other_text_is_written_as_it_is(value):
    assert list(csv.reader(io.StringIO(csv_text(["message"], [[value]]))))[1] == [value]


def test_numbers_are_written_as_numbers_even_negative_ones():
    out = io.StringIO()
    writer = Writer(out)
    writer.writerows([[-12, 3.5, None]])

    assert out.getvalue() == "-12,3.5,\r\n"


def test_the_import_error_report_neutralizes_what_it_quotes():
    from billing.imports import RowError, errors_csv

    text = errors_csv([RowError(2, "email", "=cmd|' /C calc'!A0"), RowError(None, "", "ok")])

    assert list(csv.reader(io.StringIO(text))) == [
        ["line", "field", "message"],
        ["2", "email", "'=cmd|' /C calc'!A0"],
        ["", "", "ok"],
    ]
