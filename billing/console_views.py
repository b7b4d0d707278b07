"""The console's import page, /console/imports/: a marketer uploads a CSV file of customers,
purchases or assignments and sees what happened to every row. The same implementation as the
command and the API (billing.imports).

A small file (up to INLINE_MAX) is imported while the marketer waits. A larger one, up to
MAX_UPLOAD, is stored and imported by a Celery task (billing.imports.jobs), so the web server's
timeout never cuts it off; its page (``?job=<id>``) shows a progress bar, polled from static
JavaScript (``?job=<id>&format=json``), and then the same result. The job pages live under the
upload page's own URL, as query parameters, so that this app adds no route of its own."""

import secrets
import zlib

from django import forms
from django.core.cache import cache
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from accounts.roles import MARKETER, role_required
from billing.imports import ASSIGNMENTS, COLUMNS, CUSTOMERS, PURCHASES, errors_csv, history_import_csv, jobs

SHOWN_ERRORS = jobs.SHOWN_ERRORS  # the rest are in the CSV download
KEPT_FOR = 60 * 60  # seconds the full error list of a file imported at once can be downloaded
MAX_UPLOAD = 200 * 1024 * 1024  # bytes; a larger file is refused before it is stored
INLINE_MAX = 2 * 1024 * 1024  # bytes; a file up to this size is imported in the request


def _too_large() -> str:
    message = _(
        "The file is larger than %(limit)s. Split it into smaller files, or ask an operator to run "
        "manage.py import_history."
    )
    return message % {"limit": filesizeformat(MAX_UPLOAD)}


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

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD:
            raise forms.ValidationError(_too_large())
        return upload


class UploadLimit(FileUploadHandler):
    """Stops keeping an upload once it passes MAX_UPLOAD, so that an oversized file fills
    neither memory nor disk; the rest of the request is read and dropped, and the form says
    why the file is missing (rather than the connection being cut, which a browser shows as a
    bare error)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0
        self.too_large = False

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > MAX_UPLOAD:
            self.too_large = True
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers keep the file


@csrf_exempt  # only to put the handler first; the view itself is csrf_protect'ed
def imports_upload(request):
    # The handler has to be in place before anything reads the body, CSRF's check included.
    limit = UploadLimit(request)
    request.upload_handlers.insert(0, limit)
    return _imports(request, limit)


@csrf_protect
@role_required(MARKETER)
@require_http_methods(["GET", "POST"])
def _imports(request, limit: UploadLimit):
    if request.method == "GET" and "job" in request.GET:
        return _job(request, request.GET["job"])
    if request.method == "GET" and "errors" in request.GET:
        return _errors_download(request, request.GET["errors"])
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    context = {
        "form": form,
        "formats": list(COLUMNS.items()),
        "max_upload": MAX_UPLOAD,
        "inline_max": INLINE_MAX,
        "jobs": jobs.import_jobs_recent(user=request.user),
    }
    if not form.is_bound:
        return render(request, "console/imports.html", context)
    valid = form.is_valid()
    if limit.too_large:
        form.errors["file"] = form.error_class([_too_large()])
        valid = False
    if not valid:
        return render(request, "console/imports.html", context, status=400)

    upload = form.cleaned_data["file"]
    if upload.size > INLINE_MAX:
        job = jobs.import_job_create(
            kind=form.cleaned_data["kind"],
            upload=upload,
            file_name=upload.name,
            skip_invalid=form.cleaned_data["skip_invalid"],
            user=request.user,
            at=timezone.now(),
        )
        response = HttpResponseRedirect(f"{reverse('console:imports')}?job={job.pk}")
        response.status_code = 303  # See Other: the job's page, fetched with GET
        return response

    upload.seek(0)
    result = history_import_csv(
        kind=form.cleaned_data["kind"],
        file=upload.file,
        source="import",
        skip_invalid=form.cleaned_data["skip_invalid"],
    )
    token = _errors_keep(request, result.errors) if result.errors else ""
    context.update(
        {
            "result": result,
            "file_name": upload.name,
            "skip_invalid": form.cleaned_data["skip_invalid"],
            "errors": result.errors[:SHOWN_ERRORS],
            "more_errors": max(len(result.errors) - SHOWN_ERRORS, 0),
            "errors_token": token,
            "errors_url": f"?errors={token}",
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
    return _csv_attachment(HttpResponse(zlib.decompress(kept)))


def _csv_attachment(response: HttpResponse) -> HttpResponse:
    response["Content-Type"] = "text/csv; charset=utf-8"
    response["Content-Disposition"] = 'attachment; filename="import-errors.csv"'
    return response


# --- Imports in the background ---------------------------------------------------------------------
def _job(request, pk: str):
    job = jobs.import_job_for(user=request.user, pk=pk)
    state = jobs.import_job_state(job, at=timezone.now())
    if request.GET.get("format") == "json":
        return JsonResponse(
            {
                "status": state.status,
                "finished": state.finished,
                "percent": state.percent,
                "read": job.progress,
                "size": job.size,
                "age_seconds": int(state.age.total_seconds()),
            }
        )
    if request.GET.get("download") == "errors":
        if not job.errors_file:
            raise Http404(_("This import has no errors to download."))
        return _csv_attachment(FileResponse(job.errors_file.open("rb")))
    context = {"job": job, "state": state, "status_url": f"?job={job.pk}&format=json"}
    if state.result is not None:
        errors = state.result.errors
        context.update(
            {
                "result": state.result,
                "file_name": job.file_name,
                "skip_invalid": job.skip_invalid,
                "errors": errors,
                "more_errors": max(state.errors_total - len(errors), 0),
                "errors_url": f"?job={job.pk}&download=errors",
            }
        )
    return render(request, "console/import_job.html", context)
