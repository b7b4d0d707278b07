"""The API's JSON parsers. Kept apart from config/api.py: DRF imports DEFAULT_PARSER_CLASSES
while it defines APIView, which config/api.py subclasses."""

import codecs
import json

from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser, JSONParser


def _json_problem(exc: Exception) -> exceptions.ParseError:
    if isinstance(exc, RecursionError):
        return exceptions.ParseError("The body is nested too deeply to be read as JSON.")
    reason = str(getattr(exc, "detail", exc)).removeprefix("JSON parse error - ")
    return exceptions.ParseError(f"The body is not valid JSON: {reason}.")


class JSONBodyParser(JSONParser):
    """DRF's JSON parser, with a plain message, and a 400 instead of a 500 for a body nested
    too deeply for Python's parser. (An unknown charset falls back to UTF-8 in Django.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except (exceptions.ParseError, RecursionError) as exc:
            raise _json_problem(exc) from None


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The body is too large."


def _not_a_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


class LargeJSONBodyParser(BaseParser):
    """JSON for the import endpoints, whose documented limit (records per request) is far above
    Django's DATA_UPLOAD_MAX_MEMORY_SIZE. Not a JSONParser subclass on purpose: DRF reads
    ``request.body`` for those, which enforces Django's limit; this reads the stream itself, up
    to its own ``max_bytes``, and answers 413 in the API's shape beyond it."""

    media_type = "application/json"
    max_bytes = 10 * 1024 * 1024  # a view may set max_body_bytes

    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        limit = getattr(context.get("view"), "max_body_bytes", None) or self.max_bytes
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"Send at most {limit // (1024 * 1024)} MB in one request.")
        encoding = context.get("encoding") or "utf-8"
        try:
            codecs.lookup(encoding)
        except LookupError:
            encoding = "utf-8"
        try:
            return json.loads(raw.decode(encoding), parse_constant=_not_a_constant)
        except (ValueError, RecursionError) as exc:
            raise _json_problem(exc) from None
