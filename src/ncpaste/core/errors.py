"""The one exception tree every layer raises to the edges.

Each error carries what an edge needs to answer a client: an HTTP status and a
one-line message that is safe to show (it never contains paste bytes or
secrets). The netcat edge prints ``error: <message>``; the HTTP edge sends the
status with the message as a text body.
"""

from __future__ import annotations

# A client's value echoed in a message is clipped to this many characters.
MAX_ECHO_CHARS = 40


def echo(value: str) -> str:
    """A client's value, to be echoed back in an error message: bounded,
    printable, one line (control characters such as ESC or newline come
    back escaped)."""
    clipped = value[:MAX_ECHO_CHARS] + ("..." if len(value) > MAX_ECHO_CHARS else "")
    return clipped.encode("unicode_escape").decode("ascii")


class PasteError(Exception):
    """Base of every error a client may be told about."""

    http_status = 500
    #: Short machine-readable reason, used in logs (never the message itself).
    reason = "internal"
    #: After this answer the connection cannot carry another request (its
    #: framing or protocol is in doubt), even if the request was read whole.
    ends_connection = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(PasteError):
    http_status = 400
    reason = "bad_request"


class BadOption(BadRequest):
    reason = "bad_option"


class EmptyPaste(BadRequest):
    reason = "empty"


class InvalidAlias(BadRequest):
    reason = "alias_invalid"


class Forbidden(PasteError):
    http_status = 403
    reason = "forbidden"


class Denied(Forbidden):
    reason = "denied"


class NotFound(PasteError):
    http_status = 404
    reason = "not_found"


class MethodNotAllowed(PasteError):
    http_status = 405
    reason = "method_not_allowed"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class AliasTaken(PasteError):
    http_status = 409
    reason = "alias_taken"


class TooLarge(PasteError):
    http_status = 413
    reason = "too_large"


class NotText(PasteError):
    http_status = 415
    reason = "not_text"


class UnsupportedForm(PasteError):
    """A body in a form this route does not take (the delete button's form)."""

    http_status = 415
    reason = "unsupported_form"


class CrossSite(PasteError):
    """A post another site's page made a visitor's browser send (CSRF)."""

    http_status = 403
    reason = "cross_site"


class RangeNotSatisfiable(PasteError):
    http_status = 416
    reason = "range"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class RateLimited(PasteError):
    http_status = 429
    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class HeadersTooLarge(PasteError):
    http_status = 431
    reason = "headers_too_large"


class NotImplementedHere(PasteError):
    """A request feature this server does not implement (RFC 9110 15.6.2),
    e.g. a transfer coding other than chunked."""

    http_status = 501
    reason = "not_implemented"


class VersionNotSupported(PasteError):
    """A request in an HTTP version other than 1.x (RFC 9110 15.6.6)."""

    http_status = 505
    reason = "http_version"
    ends_connection = True  # what follows is in a protocol we do not parse


class AmbiguousFraming(BadRequest):
    """Transfer-Encoding with Content-Length (RFC 9112 6.1: close after answering)."""

    ends_connection = True


class StorageFull(PasteError):
    http_status = 507
    reason = "storage_full"


class StorageUnavailable(PasteError):
    http_status = 503
    reason = "storage_unavailable"


class CorruptPaste(PasteError):
    """A stored record fails its checksum: never serve wrong bytes."""

    http_status = 500
    reason = "corrupt"


class Timeout(PasteError):
    http_status = 408
    reason = "timeout"
