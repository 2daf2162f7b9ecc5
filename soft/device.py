"""Typed access to a meter, the same on a board and in simulation."""

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from refmeter.gateware.hostlink.protocol import Command
from refmeter.gateware.registers import RegisterMap

from .errors import MeterError
from .link import MeterLink
from .registers import METER_REGISTERS, RegisterValue, decode, encode, register_map as registers_for
from .transport import Transport

__all__ = ["Identity", "LinkStatus", "Meter", "format_eui64", "utc_datetime"]


def format_eui64(meter_id: int) -> str:
    """A meter id as written on labels and certificates: ``02-52-45-46-00-00-00-01``."""
    return "-".join(f"{byte:02X}" for byte in meter_id.to_bytes(8, "big"))


def utc_datetime(utc_time: RegisterValue) -> datetime.datetime:
    """A ``utc_time`` register value as an aware UTC datetime (millisecond resolution)."""
    return (datetime.datetime.fromtimestamp(utc_time["seconds"], datetime.timezone.utc)
            + datetime.timedelta(milliseconds=utc_time["millisecond"]))


@dataclass(frozen=True)
class Identity:
    """Who the meter is and which gateware it runs."""

    meter_id: int                           #: EUI-64
    gateware_version: tuple[int, int, int]  #: (major, minor, patch)
    build_hash: int                         #: first 32 bits of the source commit, 0 if unknown
    register_map_hash: int                  #: fingerprint of the gateware's register map

    @property
    def eui64(self) -> str:
        return format_eui64(self.meter_id)

    @property
    def version(self) -> str:
        return ".".join(map(str, self.gateware_version))


@dataclass(frozen=True)
class LinkStatus:
    """Host-link error counters (each wraps)."""

    rejected_frames: int
    framing_errors: int
    overruns: int


class Meter:
    """A meter reached through a :class:`~refmeter.soft.transport.Transport`.

    ``Meter(transport)`` works for a board, a ``socket://`` co-simulation and the
    in-process simulation alike. Use as a context manager to close the transport.

    The register map is the one for the meter's number of phases, read from its
    ``phases`` register (at the same address in every map) on first use, unless
    ``register_map`` gives it.
    """

    def __init__(self, transport: Transport, *, timeout: float = 1.0, tries: int = 3,
                 register_map: RegisterMap | None = None):
        self.link = MeterLink(transport, timeout=timeout, tries=tries)
        self._register_map = register_map

    @property
    def register_map(self) -> RegisterMap:
        if self._register_map is None:
            phases = self._read_with(METER_REGISTERS, "phases")
            try:
                self._register_map = registers_for(int(phases))
            except ValueError as error:
                raise MeterError(f"meter at {self.link.url} reports {phases} phases: {error}") from error
        return self._register_map

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.link.transport.close()

    def read(self, name: str) -> "int | RegisterValue":
        """One register: a number, or a :class:`RegisterValue` of its fields."""
        return self._read_with(self.register_map, name)

    def _read_with(self, registers: RegisterMap, name: str) -> "int | RegisterValue":
        register = registers[name]
        data = self.link.request(Command.READ, registers.address_of(name), target=name)
        try:
            return decode(register, data)
        except ValueError as error:
            raise MeterError(f"meter at {self.link.url}: {error}") from error

    def write(self, name: str, value: "int | Mapping[str, int]") -> None:
        """Write one register (a number, or field values by name)."""
        register = self.register_map[name]
        self.link.request(Command.WRITE, self.register_map.address_of(name),
                          encode(register, value), target=name)

    def read_all(self) -> dict[str, "int | RegisterValue"]:
        """Every readable register, by name, in address order."""
        return {register.name: self.read(register.name)
                for _, register in self.register_map if register.access.readable}

    def identity(self) -> Identity:
        version = self.read("gateware_version")
        assert isinstance(version, RegisterValue)
        return Identity(
            meter_id=int(self.read("meter_id")),
            gateware_version=(version["major"], version["minor"], version["patch"]),
            build_hash=int(self.read("build_hash")),
            register_map_hash=int(self.read("register_map_hash")),
        )

    def check_register_map(self) -> Identity:
        """The identity, after checking that the gateware's register map is this host's.

        Raises :class:`MeterError` when they differ: every other register address
        could then mean something else.
        """
        identity = self.identity()
        expected = self.register_map.fingerprint()
        if identity.register_map_hash != expected:
            raise MeterError(
                f"meter at {self.link.url} has register map {identity.register_map_hash:#010x}, "
                f"this host expects {expected:#010x}: install the refmeter version the "
                f"bitstream was built with ({identity.version}), or rebuild the bitstream")
        return identity

    def utc_time(self) -> datetime.datetime:
        """The meter's clock, as an aware UTC datetime (millisecond resolution)."""
        time = self.read("utc_time")
        assert isinstance(time, RegisterValue)
        return utc_datetime(time)

    def link_status(self) -> LinkStatus:
        status = self.read("link_status")
        assert isinstance(status, RegisterValue)
        return LinkStatus(**status)
