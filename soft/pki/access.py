"""Messages, the data objects they touch, and who may do what to each: the access
table (docs/pki.md prints it).

A message is allowed when its originator's role holds the message's right on the
message's data object. Critical messages (those that can cut supply, change what
is billed, or change what the meter trusts or runs) also need the access-control
broker's MAC: the second source.
"""

import enum
from dataclasses import dataclass

from .errors import Reason, Refused
from .roles import Role

__all__ = ["Right", "DataObject", "MessageCode", "Message", "MESSAGES", "ACCESS", "check_access",
           "access_markdown"]


class Right(enum.Flag):
    READ = enum.auto()
    WRITE = enum.auto()
    EXECUTE = enum.auto()
    NONE = 0


class DataObject(enum.Enum):
    ENERGY_REGISTERS = "energy registers"    #: cumulative +A/-A, what bills are made of
    LOAD_PROFILE = "load profile"            #: half-hourly energy: the household's routine
    VOLTAGE_QUALITY = "voltage quality"      #: Urms, frequency, sags and swells
    CLOCK = "clock"                          #: UTC time, which selects tariffs
    TARIFF = "tariff"                        #: prices and the standing charge
    SUPPLY = "supply"                        #: the load switch: disconnect, arm reconnect
    FIRMWARE = "firmware"                    #: image activation
    TRUST_ANCHORS = "trust anchors"          #: the certificates the meter trusts


class MessageCode(enum.IntEnum):
    """The 16-bit code a command carries."""

    READ_ENERGY = 0x0001
    READ_LOAD_PROFILE = 0x0002
    READ_VOLTAGE_QUALITY = 0x0003
    SET_CLOCK = 0x0010
    UPDATE_TARIFF = 0x0020
    DISCONNECT_SUPPLY = 0x0030
    ARM_RECONNECTION = 0x0031
    ACTIVATE_FIRMWARE = 0x0040
    REPLACE_ANCHOR = 0x0050


@dataclass(frozen=True)
class Message:
    data_object: DataObject
    right: Right
    critical: bool
    payload_bytes: int | None = 0   #: the payload's fixed length; None: any


def _checked_payload(code: "MessageCode", payload: bytes) -> None:
    expected = MESSAGES[code].payload_bytes
    if expected is not None and len(payload) != expected:
        raise Refused(Reason.MALFORMED, f"{code.name} carries {expected} payload bytes, "
                                        f"not {len(payload)}")


MESSAGES = {
    MessageCode.READ_ENERGY: Message(DataObject.ENERGY_REGISTERS, Right.READ, False),
    MessageCode.READ_LOAD_PROFILE: Message(DataObject.LOAD_PROFILE, Right.READ, False),
    MessageCode.READ_VOLTAGE_QUALITY: Message(DataObject.VOLTAGE_QUALITY, Right.READ, False),
    #: UTC seconds, 8 bytes
    MessageCode.SET_CLOCK: Message(DataObject.CLOCK, Right.WRITE, False, 8),
    MessageCode.UPDATE_TARIFF: Message(DataObject.TARIFF, Right.WRITE, True, None),
    MessageCode.DISCONNECT_SUPPLY: Message(DataObject.SUPPLY, Right.EXECUTE, True),
    MessageCode.ARM_RECONNECTION: Message(DataObject.SUPPLY, Right.EXECUTE, True),
    #: a signed image (:mod:`.firmware`)
    MessageCode.ACTIVATE_FIRMWARE: Message(DataObject.FIRMWARE, Right.EXECUTE, True, None),
    #: credentials (:class:`.anchors.Credentials`)
    MessageCode.REPLACE_ANCHOR: Message(DataObject.TRUST_ANCHORS, Right.WRITE, True, None),
}

_R, _W, _X, _N = Right.READ, Right.WRITE, Right.EXECUTE, Right.NONE
#: Rights per data object and role. The network operator sees voltage quality and
#: the registers, not the load profile (the household's routine is the supplier's to
#: read, with consent); only the supplier bills, prices and switches; the broker sets
#: the clock (it is the time source); each role replaces only its own anchors, and
#: recovery any (:mod:`.anchors` enforces the "own" part).
ACCESS: dict[DataObject, dict[Role, Right]] = {
    #                              supplier     network  broker  recovery  manufacturer
    DataObject.ENERGY_REGISTERS: {Role.SUPPLIER: _R, Role.NETWORK: _R, Role.BROKER: _N,
                                  Role.RECOVERY: _N, Role.MANUFACTURER: _N},
    DataObject.LOAD_PROFILE: {Role.SUPPLIER: _R, Role.NETWORK: _N, Role.BROKER: _N,
                              Role.RECOVERY: _N, Role.MANUFACTURER: _N},
    DataObject.VOLTAGE_QUALITY: {Role.SUPPLIER: _R, Role.NETWORK: _R, Role.BROKER: _N,
                                 Role.RECOVERY: _N, Role.MANUFACTURER: _N},
    DataObject.CLOCK: {Role.SUPPLIER: _W, Role.NETWORK: _N, Role.BROKER: _W,
                       Role.RECOVERY: _N, Role.MANUFACTURER: _N},
    DataObject.TARIFF: {Role.SUPPLIER: _W, Role.NETWORK: _N, Role.BROKER: _N,
                        Role.RECOVERY: _N, Role.MANUFACTURER: _N},
    DataObject.SUPPLY: {Role.SUPPLIER: _X, Role.NETWORK: _N, Role.BROKER: _N,
                        Role.RECOVERY: _N, Role.MANUFACTURER: _N},
    DataObject.FIRMWARE: {Role.SUPPLIER: _X, Role.NETWORK: _N, Role.BROKER: _N,
                          Role.RECOVERY: _N, Role.MANUFACTURER: _N},
    DataObject.TRUST_ANCHORS: {Role.SUPPLIER: _W, Role.NETWORK: _W, Role.BROKER: _W,
                               Role.RECOVERY: _W, Role.MANUFACTURER: _W},
}


def check_access(role: Role, code: MessageCode, payload: bytes) -> Message:
    """The message ``code`` is, if ``role`` may send it (else :attr:`Reason.NOT_PERMITTED`)
    with this ``payload`` (else :attr:`Reason.MALFORMED`)."""
    message = MESSAGES[code]
    if message.right not in ACCESS[message.data_object].get(role, Right.NONE):
        raise Refused(Reason.NOT_PERMITTED, f"a {role.value} may not "
                      f"{message.right.name.lower()} the {message.data_object.value} "
                      f"({code.name})")
    _checked_payload(code, payload)
    return message


def access_markdown() -> str:
    """The access table as docs/pki.md prints it (a test keeps the page current)."""
    roles = list(next(iter(ACCESS.values())))
    lines = ["| data object | " + " | ".join(role.value for role in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for data_object, rights in ACCESS.items():
        cells = ["".join(letter for right, letter in ((_R, "R"), (_W, "W"), (_X, "X"))
                         if right in rights[role]) or "–" for role in roles]
        lines.append(f"| {data_object.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
