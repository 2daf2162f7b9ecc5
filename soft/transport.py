"""The one transport abstraction between the host and a meter's UART.

A :class:`Transport` moves bytes; it knows nothing of frames. The serial
implementation here reaches boards (``/dev/ttyUSB0``) and co-simulations
(``socket://127.0.0.1:7700``) through pyserial; ``refmeter.sim`` provides the
in-process simulation implementation. Everything above (frames, retries, the
device API) is written once against this class.
"""

import abc
from types import TracebackType

import serial

from .errors import LinkError

__all__ = ["Transport", "SerialTransport", "DEFAULT_BAUD"]

#: Host-link rate of refmeter bitstreams, bits/s (also the pyserial default here).
DEFAULT_BAUD = 115_200


class Transport(abc.ABC):
    """A byte pipe to a meter's host-link UART."""

    #: Where the meter is, as the user named it; used in every error message.
    url: str

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` to the meter."""

    @abc.abstractmethod
    def read(self, size: int, timeout: float) -> bytes:
        """Return ``size`` bytes from the meter, or fewer if ``timeout`` (s) passes first."""

    @abc.abstractmethod
    def discard_input(self) -> None:
        """Drop bytes already received but not read (a late answer to an earlier try)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; a closed transport cannot be used again."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class SerialTransport(Transport):
    """A serial port or any pyserial URL (``socket://``, ``rfc2217://``, ``loop://``)."""

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUD):
        self.url = url
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0)
        except (serial.SerialException, OSError, ValueError) as error:
            hint = ("is `refmeter sim` running there?" if "://" in url
                    else "is the board connected and the port right?")
            raise LinkError(f"cannot open meter link {url}: {error}; {hint}") from error

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as error:
            raise LinkError(f"lost meter link {self.url}: {error}") from error

    def read(self, size: int, timeout: float) -> bytes:
        try:
            self._port.timeout = max(timeout, 0)
            return self._port.read(size)
        except (serial.SerialException, OSError) as error:
            raise LinkError(f"lost meter link {self.url}: {error}") from error

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as error:
            raise LinkError(f"lost meter link {self.url}: {error}") from error

    def close(self) -> None:
        self._port.close()
