"""Logging filters named in settings.LOGGING."""

import logging


class ForbiddenWithoutTraceback(logging.Filter):
    """Drop the traceback from the log record of a 403.

    Django logs a PermissionDenied (and a CSRF failure) as a warning with the exception
    attached, so every refused request filled the log with a traceback that says nothing about a
    fault: the code did what it should. The line itself stays ("Forbidden (Permission denied):
    /console/…"), with its status code; every other record passes unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
