"""Errors the host raises about a meter, each with a message a person can act on."""

from refmeter.gateware.hostlink.protocol import Status

__all__ = ["MeterError", "LinkError", "NoReply", "RequestRefused"]


class MeterError(Exception):
    """Anything that went wrong talking to a meter."""


class LinkError(MeterError):
    """The link itself failed: it cannot be opened, or the meter does not answer."""


class NoReply(LinkError):
    """The meter sent no valid answer within the timeout on any try."""


class RequestRefused(MeterError):
    """The meter answered and refused the request; nothing was changed."""

    def __init__(self, message: str, status: Status):
        super().__init__(message)
        self.status = status
