"""Kubernetes-style API errors.

Every failure the API can report is an :class:`ApiError`; the API server turns it
into a ``meta/v1 Status`` object with the right HTTP code, so clients (kubectl,
the official Python client) print the same messages they print for Kubernetes.

Field-level validation problems are :class:`FieldError` values; :func:`invalid`
assembles them into the 422 ``Invalid`` status whose message reads exactly as
upstream's (``Deployment.apps "x" is invalid: spec.replicas: Invalid value: -1:
must be greater than or equal to 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

_NO_VALUE: Any = object()


class GoRepr(str):
    """A value already rendered the way Go's ``%#v`` prints it (``map[string]string{"app":"x"}``).

    Field errors show it verbatim instead of JSON-encoding it.
    """


def _fmt_value(value: Any) -> str:
    """Format a value the way Go's ``%#v``-ish printing in field errors does."""
    if isinstance(value, GoRepr):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


@dataclass
class FieldError:
    """One problem at one field path (``spec.template.spec.containers[0].image``)."""

    type: str  # Invalid, Required, Duplicate, NotSupported, Forbidden, TooLong, TooMany
    field: str
    value: Any = _NO_VALUE
    detail: str = ""
    supported: list[str] | None = None

    @property
    def reason(self) -> str:
        return {
            "Invalid": "FieldValueInvalid",
            "Required": "FieldValueRequired",
            "Duplicate": "FieldValueDuplicate",
            "NotSupported": "FieldValueNotSupported",
            "Forbidden": "FieldValueForbidden",
            "TooLong": "FieldValueTooLong",
            "TooMany": "FieldValueTooMany",
            "NotFound": "FieldValueNotFound",
        }.get(self.type, "FieldValueInvalid")

    def error_body(self) -> str:
        """The message without the field path (``Invalid value: -1: must be ...``)."""
        if self.type == "Required":
            s = "Required value"
        elif self.type == "Forbidden":
            s = "Forbidden"
        elif self.type == "TooLong":
            s = "Too long"
        elif self.type == "TooMany":
            s = "Too many"
        elif self.type == "Duplicate":
            s = "Duplicate value"
        elif self.type == "NotFound":
            s = "Not found"
        elif self.type == "NotSupported":
            s = "Unsupported value"
        else:
            s = "Invalid value"
        if self.value is not _NO_VALUE and self.type not in ("Required", "Forbidden", "TooLong"):
            s += ": " + _fmt_value(self.value)
        if self.type == "NotSupported" and self.supported:
            s += ": supported values: " + ", ".join(f'"{v}"' for v in self.supported)
        elif self.detail:
            s += ": " + self.detail
        return s

    def __str__(self) -> str:
        return f"{self.field}: {self.error_body()}"


def invalid_value(field: str, value: Any, detail: str) -> FieldError:
    return FieldError("Invalid", field, value, detail)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("Required", field, _NO_VALUE, detail)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    return FieldError("NotSupported", field, value, "", supported)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("Forbidden", field, _NO_VALUE, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("Duplicate", field, value)


def too_long(field: str, max_len: int) -> FieldError:
    return FieldError("TooLong", field, _NO_VALUE, f"must have at most {max_len} bytes")


class ApiError(Exception):
    """An error the API reports to its client as a ``Status``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            st["details"] = self.details
        return st


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    q = _qualified(resource, group)
    det: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        det["group"] = group
    return ApiError(404, "NotFound", f'{q} "{name}" not found', det)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    q = _qualified(resource, group)
    det: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        det["group"] = group
    return ApiError(409, "AlreadyExists", f'{q} "{name}" already exists', det)


def conflict(resource: str, name: str, group: str = "", why: str = "") -> ApiError:
    q = _qualified(resource, group)
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    det: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        det["group"] = group
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {q} "{name}": {why}', det)


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> ApiError:
    q = f"{kind}.{group}" if group else kind
    causes = [{"reason": e.reason, "message": e.error_body(), "field": e.field} for e in errors]
    if len(errors) == 1:
        agg = str(errors[0])
    else:
        agg = "[" + ", ".join(str(e) for e in errors) + "]"
    det: dict[str, Any] = {"name": name, "kind": kind, "causes": causes}
    if group:
        det["group"] = group
    return ApiError(422, "Invalid", f'{q} "{name}" is invalid: {agg}', det)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str = "too old resource version") -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden_error(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got "{content_type}"')


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def too_many_requests(message: str, retry_after: int = 1) -> ApiError:
    return ApiError(429, "TooManyRequests", message, retry_after=retry_after)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", message)


@dataclass
class Warnings:
    """Collects ``Warning:`` headers to send with a response."""

    items: list[str] = field(default_factory=list)

    def add(self, msg: str) -> None:
        self.items.append(msg)
