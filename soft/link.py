"""Host end of the framed protocol: request encoding, response parsing, retries.

The frame format and status codes are imported from the gateware's
:mod:`refmeter.gateware.hostlink.protocol`, so both ends share one definition.
"""

import binascii
import logging
import time
from dataclasses import dataclass

from refmeter.gateware.hostlink.protocol import (
    CRC_SIZE, MAX_PAYLOAD, RESPONSE_HEADER_SIZE, SOF, Command, Status)

from .errors import NoReply, RequestRefused
from .transport import Transport

__all__ = ["Response", "MeterLink", "encode_request", "crc16"]

logger = logging.getLogger(__name__)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, the frame checksum."""
    return binascii.crc_hqx(data, 0xFFFF)


def _frame(body: bytes) -> bytes:
    return bytes([SOF]) + body + crc16(body).to_bytes(2, "big")


def encode_request(command: Command | int, address: int, payload: bytes = b"") -> bytes:
    """A request frame. ``command`` may be any byte, so tests can send unknown ones."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"Payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return _frame(bytes([len(payload), int(command)]) + address.to_bytes(2, "big") + payload)


@dataclass(frozen=True)
class Response:
    command: int
    status: Status
    address: int
    payload: bytes


class _Deadline:
    def __init__(self, seconds: float):
        self._end = time.monotonic() + seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())


class MeterLink:
    """Request/response exchanges with one meter over a :class:`Transport`.

    Each try discards stale input, sends the request and waits ``timeout`` seconds
    for the matching response; a missing, corrupted or ``BAD_CRC`` answer is tried
    again, up to ``tries`` times in all. Reads and plain writes are idempotent, so
    repeating them is safe.
    """

    def __init__(self, transport: Transport, *, timeout: float = 1.0, tries: int = 3):
        if tries < 1:
            raise ValueError(f"Tries must be at least 1, not {tries}")
        self.transport = transport
        self.timeout = timeout
        self.tries = tries

    @property
    def url(self) -> str:
        return self.transport.url

    def request(self, command: Command, address: int, payload: bytes = b"", *,
                target: str | None = None) -> bytes:
        """Perform one request and return the response payload.

        ``target`` names the register in error messages.

        Raises
        ------
        RequestRefused
            The meter answered with an error status (other than ``BAD_CRC``).
        NoReply
            No valid matching answer on any try.
        """
        frame = encode_request(command, address, payload)
        for attempt in range(1, self.tries + 1):
            self.transport.discard_input()
            logger.debug("to %s:   %s", self.url, frame.hex(" "))
            self.transport.write(frame)
            response = self._receive(command, address, _Deadline(self.timeout))
            if response is None:
                logger.debug("try %d: no reply from %s", attempt, self.url)
            elif response.status is Status.BAD_CRC:
                logger.debug("try %d: meter at %s saw a corrupted request", attempt, self.url)
            elif response.status is not Status.OK:
                where = f"{target} ({address:#06x})" if target else f"address {address:#06x}"
                raise RequestRefused(f"meter at {self.url} refused to {command.name.lower()} "
                                     f"{where}: {response.status.name}", response.status)
            else:
                return response.payload
        raise NoReply(f"no reply from meter at {self.url} after {self.tries} "
                      f"{'try' if self.tries == 1 else 'tries'}")

    def _receive(self, command: int, address: int, deadline: _Deadline) -> Response | None:
        """The first well-formed response that answers this request, or ``None``.

        Bytes that do not form a valid frame, and valid frames answering something
        else (a late reply to an earlier try), are skipped.
        """
        while deadline.remaining > 0:
            start = self.transport.read(1, deadline.remaining)
            if start != bytes([SOF]):
                continue
            header = self.transport.read(RESPONSE_HEADER_SIZE - 1, deadline.remaining)
            if len(header) < RESPONSE_HEADER_SIZE - 1 or header[0] > MAX_PAYLOAD:
                continue
            rest = self.transport.read(header[0] + CRC_SIZE, deadline.remaining)
            body = header + rest[:-CRC_SIZE]
            if len(rest) < header[0] + CRC_SIZE or crc16(body) != int.from_bytes(rest[-CRC_SIZE:], "big"):
                logger.debug("discarding a corrupted response from %s", self.url)
                continue
            try:
                status = Status(header[2])
            except ValueError:
                continue
            logger.debug("from %s: %s", self.url, (start + header + rest).hex(" "))
            response = Response(header[1], status, int.from_bytes(header[3:5], "big"), rest[:-CRC_SIZE])
            if response.status is Status.BAD_CRC or (response.command, response.address) == (command, address):
                return response
            logger.debug("skipping a response to another request from %s", self.url)
        return None
