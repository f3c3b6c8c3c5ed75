"""One error format for every API answer that is not a success:

    {"detail": "<what went wrong, in a sentence>", "fields": {"<field>": ["<message>", ...]}}

`fields` only on 400 (the same messages as the console's forms); a 409 adds what it conflicts with
(e.g. `running_deployment`). 401, 403, 404, 405, 429 carry `detail` only.
"""

from __future__ import annotations

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the cluster's current state."

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.extra = extra


def invalid(fields: dict, detail: str = "The request has invalid fields.") -> Response:
    """A 400 from field errors (e.g. a Django form's `errors`): the format exception_handler gives."""
    return Response({"detail": detail, "fields": {k: [str(m) for m in v] for k, v in fields.items()}},
                    status=status.HTTP_400_BAD_REQUEST)


def _flatten(data) -> list[str]:
    if isinstance(data, dict):
        return [m for v in data.values() for m in _flatten(v)]
    if isinstance(data, list):
        return [m for v in data for m in _flatten(v)]
    return [str(data)]


def exception_handler(exc, context):
    response = drf_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500, never a traceback in the answer
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        if isinstance(data, dict):
            non_field = data.pop("non_field_errors", None)
            fields = {k: _flatten(v) for k, v in data.items()}
            detail = " ".join(_flatten(non_field)) if non_field else "The request has invalid fields."
        else:
            fields, detail = {}, " ".join(_flatten(data))
        response.data = {"detail": detail, "fields": fields}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"detail": str(data["detail"])}
    else:
        response.data = {"detail": " ".join(_flatten(data))}
    response.data.update(getattr(exc, "extra", {}))
    return response
