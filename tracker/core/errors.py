"""Why an event was not counted, and the exceptions that say so.

Every event either counts or ends with one of these reasons, and every reason is a
metric label: nothing vanishes silently. The exceptions carry the field at fault and a
message, never an HTTP status: the HTTP layer maps reasons to statuses in one place
(middleware.py).
"""

from __future__ import annotations

from enum import StrEnum


class Rejected(StrEnum):
    """Refused: the client learns it from the answer (4xx, 503)."""

    INVALID = "invalid"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAVAILABLE = "unavailable"
    ORIGIN = "origin"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    CLIENT_CLOSED = "client_closed"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"


class Ignored(StrEnum):
    """Acknowledged (2xx) and not counted."""

    CRAWLER = "crawler"
    EMPTY = "empty"
    HEADLESS = "headless"
    DUPLICATE = "duplicate"
    DNT = "dnt"
    UA_TOO_LONG = "ua_too_long"
    ADDRESS_LIMIT = "address_limit"
    RETRIED = "retried"
    # Engagement with no counted view of that reader on the article (none, a repeat, or
    # one past its address's bound), or more engaged seconds than time since that view.
    NO_VIEW = "no_view"
    ENGAGED_LIMIT = "engaged_limit"
    # A kind of event tracker does not count: Plausible's engagement and custom events,
    # pages whose URL holds no article id, engage events of link-preview fetchers.
    NOT_COUNTED = "not_counted"


class TrackerError(Exception):
    """A request tracker refuses; `field` names what is at fault."""

    reason: Rejected = Rejected.INVALID
    error = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class InvalidInput(TrackerError):
    """Malformed or invalid: not an event, a bad id, a bad parameter."""


class TooLarge(TrackerError):
    reason = Rejected.TOO_LARGE
    error = "too_large"


class UnsupportedMediaType(TrackerError):
    reason = Rejected.UNSUPPORTED_MEDIA_TYPE
    error = "unsupported_media_type"


class OriginNotAllowed(TrackerError):
    reason = Rejected.ORIGIN
    error = "origin_not_allowed"


class RateLimited(TrackerError):
    """Over TRACKER_RATE_LIMIT for the client's address."""

    reason = Rejected.RATE_LIMITED
    error = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "address", f"too many requests from this address; retry in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class Unauthorized(TrackerError):
    """No token, or one tracker does not know (editors' endpoints)."""

    reason = Rejected.UNAUTHORIZED
    error = "unauthorized"


class Forbidden(TrackerError):
    """A token that was revoked."""

    reason = Rejected.FORBIDDEN
    error = "forbidden"


class ReadTimeout(TrackerError):
    """The client did not send its request within TRACKER_READ_TIMEOUT."""

    reason = Rejected.TIMEOUT
    error = "timeout"


class ClientClosed(TrackerError):
    """The client went away before its request was read; nobody gets the answer."""

    reason = Rejected.CLIENT_CLOSED
    error = "client_closed"


class Unavailable(TrackerError):
    """A server tracker depends on cannot take or give the data now (down, slow,
    restarting); retrying later may succeed."""

    reason = Rejected.UNAVAILABLE
    error = "unavailable"
    dependency = "dependency"

    def __init__(self, message: str) -> None:
        super().__init__(
            self.dependency, f"{self.dependency} cannot take or give data now; retry later"
        )
        self.cause = message

    def __str__(self) -> str:
        return self.cause


class RedisUnavailable(Unavailable):
    dependency = "redis"


class Overloaded(Unavailable):
    """Shed at the door: the event loop lags, or the request ran past its deadline."""

    reason = Rejected.OVERLOADED
    error = "overloaded"
    dependency = "tracker"


class DatabaseUnavailable(Unavailable):
    dependency = "postgres"
