"""The errors of the data plane, by *kind* (bad input, not found, unavailable, deadline, ...),
each naming the field at fault where there is one. Each transport answers a kind with its own
status: REST in `service.api.rest.errors` (one JSON error shape), gRPC in
`service.api.grpc.servicer` (a status code and "<field>: <reason>").
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    BAD_INPUT = "bad_input"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    LOAD_FAILED = "load_failed"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"  # the service's fault: logged with the request id


RETRY_AFTER_S = 1  # what a 503 (UNAVAILABLE) tells the client to wait before trying again


class ServiceError(Exception):
    """An error of `kind`, naming the field at fault where there is one."""

    kind: Kind = Kind.BAD_INPUT

    def __init__(self, reason: str, field: str | None = None, kind: Kind | None = None):
        super().__init__(reason)
        self.reason = reason
        self.field = field
        if kind is not None:
            self.kind = kind


class BadInputError(ServiceError):
    kind = Kind.BAD_INPUT


class NotFoundError(ServiceError):
    kind = Kind.NOT_FOUND


class UnavailableError(ServiceError):
    """The service cannot take this request now (queue full, memory, shutting down): 503 with
    Retry-After."""

    kind = Kind.UNAVAILABLE


class DeadlineExceededError(ServiceError):
    """The request's deadline passed before it could run; it was not run."""

    kind = Kind.DEADLINE_EXCEEDED
