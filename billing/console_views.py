"""The console's import page, /console/imports/: a marketer uploads a CSV file of customers,
purchases or assignments and sees what happened to every row. The same implementation as the
command and the API (billing.imports)."""

import secrets
import zlib

from django import forms
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from accounts.roles import MARKETER, role_required
from billing.imports import ASSIGNMENTS, COLUMNS, CUSTOMERS, PURCHASES, errors_csv, history_import_csv

SHOWN_ERRORS = 200  # the rest are in the CSV download
KEPT_FOR = 60 * 60  # seconds the full error list can be downloaded


class ImportForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("The file holds"),
        choices=[
            (CUSTOMERS, gettext_lazy("Customers")),
            (PURCHASES, gettext_lazy("Purchases and refunds")),
            (ASSIGNMENTS, gettext_lazy("Assignments and trials")),
        ],
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy("UTF-8, with the header row shown below for its kind."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    skip_invalid = forms.BooleanField(
        label=gettext_lazy("Import the valid rows even if some rows are not valid"),
        required=False,
        help_text=gettext_lazy("Without this, one invalid row means nothing is imported."),
    )


@role_required(MARKETER)
@require_http_methods(["GET", "POST"])
def imports_upload(request):
    if request.method == "GET" and "errors" in request.GET:
        return _errors_download(request, request.GET["errors"])
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    context = {"form": form, "formats": list(COLUMNS.items())}
    if not form.is_bound:
        return render(request, "console/imports.html", context)
    if not form.is_valid():
        return render(request, "console/imports.html", context, status=400)

    upload = form.cleaned_data["file"]
    upload.seek(0)
    result = history_import_csv(
        kind=form.cleaned_data["kind"],
        file=upload.file,
        source="import",
        skip_invalid=form.cleaned_data["skip_invalid"],
    )
    context.update(
        {
            "result": result,
            "file_name": upload.name,
            "skip_invalid": form.cleaned_data["skip_invalid"],
            "errors": result.errors[:SHOWN_ERRORS],
            "more_errors": max(len(result.errors) - SHOWN_ERRORS, 0),
            "errors_token": _errors_keep(request, result.errors) if result.errors else "",
        }
    )
    return render(request, "console/imports.html", context, status=400 if result.refused else 200)


def _errors_key(request, token: str) -> str:
    return f"imports:errors:{request.user.pk}:{token}"


def _errors_keep(request, errors) -> str:
    """Keep the whole error list for an hour, for the marketer who uploaded the file."""
    token = secrets.token_urlsafe(16)
    cache.set(_errors_key(request, token), zlib.compress(errors_csv(errors).encode()), KEPT_FOR)
    return token


def _errors_download(request, token: str) -> HttpResponse:
    kept = cache.get(_errors_key(request, token[:64]))
    if kept is None:
        raise Http404(_("This list of errors has expired; upload the file again to see it."))
    response = HttpResponse(zlib.decompress(kept), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="import-errors.csv"'
    return response
