"""History files imported in the background (billing.models.ImportJob): the console stores the
upload and queues a task after the commit; the task claims the job, runs the same import as the
command, and records its result. The page polls the job's state.

Progress is written from a thread of its own, so on a database connection of its own: the
import is one transaction, which no one else sees into until it commits. Only on PostgreSQL:
SQLite has one writer at a time, and the import is it, so there the page shows the job as
running, with its age, but not how far it got."""

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from queue import SimpleQueue

from django.core.files import File
from django.core.files.base import ContentFile
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.http import Http404
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from billing.imports import ImportResult, RowError, errors_csv, history_import_csv
from billing.models import ImportJob

logger = logging.getLogger(__name__)

SHOWN_ERRORS = 200  # on the page; every error is in the CSV download
TIME_LIMIT = 60 * 60  # seconds the task may run before Celery stops it
# Longer than the task may run, so a live claim is never taken over; after it, the run is over.
LEASE = timedelta(seconds=TIME_LIMIT + 5 * 60)
WAITING_TOO_LONG = timedelta(minutes=10)  # queued this long: say no worker has taken it


def import_job_create(*, kind: str, upload: File, file_name: str, skip_invalid: bool, user, at: datetime) -> ImportJob:
    """Store the upload and its job, and queue the import once both are committed."""
    with transaction.atomic():
        job = ImportJob(
            kind=kind,
            skip_invalid=skip_invalid,
            file_name=file_name[:255],
            size=upload.size,
            uploaded_by=user,
            created_at=at,
        )
        job.file.save(f"{kind}.csv", upload, save=False)
        job.save()
        transaction.on_commit(lambda: _queue(job.pk))
    return job


def _queue(job_pk: int) -> None:
    from billing.tasks import history_import_job_task

    try:
        history_import_job_task.delay(job_pk=job_pk)
    except BrokerUnavailable:
        # The job is stored and shows as waiting, with its age, so nobody is misled.
        logger.exception("Could not queue import job %s", job_pk)


def import_job_run(*, job_pk: int, at: datetime) -> str | None:
    """Claim the job and import its file. Returns the job's new status, or None when it was
    not ours to take (done already, or running under a live claim)."""
    claimable = Q(status=ImportJob.Status.QUEUED) | Q(status=ImportJob.Status.RUNNING, lease_until__lte=at)
    claimed = ImportJob.objects.filter(claimable, pk=job_pk).update(
        status=ImportJob.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=at,
        lease_until=at + LEASE,
        progress=0,
        progress_at=None,
    )
    if not claimed:
        return None
    job = ImportJob.objects.get(pk=job_pk)
    progress = _Progress(job) if connection.vendor == "postgresql" else None
    try:
        with job.file.storage.open(job.file.name, "rb") as stored:
            # The file object itself: Django's File also splits lines at a bare \r (inside quotes,
            # say), and the import counts lines by \n.
            result = history_import_csv(
                kind=job.kind,
                file=stored.file,
                source="import",
                skip_invalid=job.skip_invalid,
                progress=progress,
                at=at,
            )
    except Exception as exc:
        logger.exception("Import job %s failed", job_pk)
        return _finish(job, status=ImportJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000])
    finally:
        if progress is not None:
            progress.stop()
    errors_file = ContentFile(errors_csv(result.errors).encode(), name="errors.csv") if result.errors else None
    return _finish(job, status=ImportJob.Status.DONE, result=result, errors_file=errors_file)


def _finish(
    job: ImportJob, *, status: str, result: ImportResult | None = None, error: str = "", errors_file=None
) -> str | None:
    """Record the outcome, unless a later claim took the job over (then that run records its own)."""
    if errors_file is not None:
        job.errors_file.save(errors_file.name, errors_file, save=False)
    finished = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING, attempts=job.attempts).update(
        status=status,
        finished_at=timezone.now(),
        lease_until=None,
        result=None if result is None else _stored(result),
        errors_file=job.errors_file.name or "",
        error=error,
        file="",
    )
    if not finished:
        return None
    job.file.delete(save=False)  # a history file holds personal data; it is not needed any more
    return status


def _stored(result: ImportResult) -> dict:
    counts = {name: value for name, value in asdict(result).items() if name != "errors"}
    shown = [[error.row, error.field, error.message] for error in result.errors[:SHOWN_ERRORS]]
    return {"counts": counts, "errors": shown, "errors_total": len(result.errors)}


class _Progress:
    """The bytes read so far, written to the job by a thread of its own (see the module)."""

    def __init__(self, job: ImportJob):
        self.job_pk, self.attempt = job.pk, job.attempts
        self.read = 0
        self.queue: SimpleQueue = SimpleQueue()
        self.thread = threading.Thread(target=self._write, name=f"import-job-{job.pk}-progress", daemon=True)
        self.thread.start()

    def __call__(self, count: int) -> None:
        self.read += count
        self.queue.put(self.read)

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _write(self) -> None:
        try:
            stop = False
            while not stop:
                read = None
                for item in self._waiting():
                    if item is None:
                        stop = True
                    else:
                        read = item  # only the latest figure matters
                if read is not None:
                    self._record(read)
        finally:
            connection.close()  # this thread's own connection

    def _waiting(self) -> list:
        items = [self.queue.get()]
        while not self.queue.empty():
            items.append(self.queue.get())
        return items

    def _record(self, read: int) -> None:
        try:
            ImportJob.objects.filter(pk=self.job_pk, status=ImportJob.Status.RUNNING, attempts=self.attempt).update(
                progress=read, progress_at=timezone.now()
            )
        except DatabaseError:
            logger.warning("Could not record the progress of import job %s", self.job_pk, exc_info=True)


# --- Reads -----------------------------------------------------------------------------------------
def import_job_for(*, user, pk) -> ImportJob:
    """The job, for the person who uploaded it or for staff; anyone else is told it is not found."""
    jobs = ImportJob.objects.all() if user.is_staff else ImportJob.objects.filter(uploaded_by=user)
    try:
        return jobs.get(pk=int(pk))
    except (ValueError, TypeError, ImportJob.DoesNotExist):
        raise Http404("No such import.") from None


def import_jobs_recent(*, user, limit: int = 10) -> list[ImportJob]:
    return list(ImportJob.objects.filter(uploaded_by=user).order_by("-created_at", "-pk")[:limit])


@dataclass(frozen=True)
class JobState:
    """What the page says about a job at ``at``."""

    status: str  # queued, waiting (queued too long), running, stopped (its lease ran out), done, failed
    age: timedelta  # since the upload
    running_for: timedelta | None
    since_progress: timedelta | None
    percent: int | None  # None: not known (SQLite, or nothing read yet)
    result: ImportResult | None
    errors_total: int

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "stopped")


def import_job_state(job: ImportJob, *, at: datetime) -> JobState:
    status = job.status
    if status == ImportJob.Status.QUEUED and at - job.created_at > WAITING_TOO_LONG:
        status = "waiting"
    elif status == ImportJob.Status.RUNNING and job.lease_until is not None and job.lease_until <= at:
        status = "stopped"
    result, errors_total = None, 0
    if job.result:
        counts = job.result["counts"] | {"kind": job.kind}
        result = ImportResult(**counts, errors=[RowError(*error) for error in job.result["errors"]])
        errors_total = job.result["errors_total"]
    percent = None
    if job.progress and job.size:
        percent = min(100, job.progress * 100 // job.size)
    return JobState(
        status=status,
        age=at - job.created_at,
        running_for=at - job.started_at if job.started_at and status == ImportJob.Status.RUNNING else None,
        since_progress=at - job.progress_at if job.progress_at else None,
        percent=percent,
        result=result,
        errors_total=errors_total,
    )
