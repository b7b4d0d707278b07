"""What every JSON API view shares: the JSON parser and the shape of errors.

Every error the API gives is ``{"errors": {"<field>": ["message", ...]}}``; messages that belong
to no one field are under ``non_field_errors``. Set as DRF's defaults in config/settings.py.
"""

from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.views import exception_handler


class JSONBodyParser(JSONParser):
    """DRF's JSON parser, with a plain message, and a 400 instead of a 500 for a body nested
    too deeply for Python's parser. (An unknown charset falls back to UTF-8 in Django.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except exceptions.ParseError as exc:
            reason = str(exc.detail).removeprefix("JSON parse error - ")
            raise exceptions.ParseError(f"The body is not valid JSON: {reason}.") from None
        except RecursionError:
            raise exceptions.ParseError("The body is nested too deeply to be read as JSON.") from None


def _messages(detail, path: tuple = ()) -> list[str]:
    """DRF's nested error details as plain sentences: ``Item 2, weight: A valid integer is required.``"""
    if isinstance(detail, list) and not any(isinstance(item, dict | list) for item in detail):
        where = ", ".join(f"item {step + 1}" if isinstance(step, int) else str(step) for step in path)
        prefix = f"{where[:1].upper()}{where[1:]}: " if where else ""
        # A message may quote the input, and a lone surrogate in it could not be encoded as UTF-8.
        return [f"{prefix}{message}".encode(errors="backslashreplace").decode() for message in detail]
    if isinstance(detail, list):
        detail = dict(enumerate(detail))
    if isinstance(detail, dict):
        return [message for key, value in detail.items() for message in _messages(value, (*path, key))]
    return _messages([detail], path)


def api_exception_handler(exc, context):
    """DRF's handler, with every error reshaped to ``{"errors": {field: [messages]}}``."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"} and not isinstance(exc, exceptions.ValidationError):
        errors = {"non_field_errors": [str(data["detail"])]}
    elif isinstance(data, dict):
        errors = {str(key): _messages(value) for key, value in data.items()}
    else:
        errors = {"non_field_errors": _messages(data)}
    response.data = {"errors": errors}
    return response
