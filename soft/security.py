"""The host's side of the security unit: key sets, authenticated commands and sealed
readings, built and checked with the ``cryptography`` library.

The bytes come from :mod:`refmeter.gateware.security.frames`, the definition the
gateware builds its AES-GCM inputs from; docs/security.md tells the whole story.
The host never needs to be trusted: a command it alters fails its tag in the
gateware, and a reading it alters fails :meth:`SealedReading.verify`.
"""

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from refmeter.gateware.hostlink.protocol import Status
from refmeter.gateware.security.authority import Authority
from refmeter.gateware.security.frames import (TAG_BYTES, SEALED_BYTES, SealKind, command_aad,
                                               command_plaintext, seal_aad, system_title)
from refmeter.gateware.security.unit import KEY_BITS, SecurityResult

from .device import Meter
from .errors import MeterError
from .registers import RegisterValue, encode

__all__ = ["KEY_BYTES", "DEFAULT_SENDER_TITLE", "KeySet", "CommandFrame", "CommandRefused",
           "SealedReading", "build_command", "provision", "zeroise", "send_command",
           "seal_reading"]

KEY_BYTES = KEY_BITS // 8
#: The system title commands from this host carry (it must not be a meter's).
DEFAULT_SENDER_TITLE = b"RFMHOST1"
#: How long the gateware may take over a command: microseconds, but a simulation
#: running at a few thousand cycles a second takes longer.
_COMPLETION_TIMEOUT_S = 10.0


class CommandRefused(MeterError):
    """The security unit refused a command or a seal; nothing was written."""

    def __init__(self, message: str, result: SecurityResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class KeySet:
    """One meter's AES-128 keys, one per authority. ``repr`` never shows a key."""

    meter_id: int
    keys: Mapping[Authority, bytes]

    def __post_init__(self) -> None:
        for authority, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"the {authority.slot_name} key is {len(key)} bytes, "
                                 f"not {KEY_BYTES}")

    def __repr__(self) -> str:
        slots = ", ".join(authority.slot_name for authority in self.keys)
        return f"KeySet(meter_id={self.meter_id:#018x}, slots=[{slots}])"

    @classmethod
    def generate(cls, meter_id: int) -> "KeySet":
        """Fresh random keys for every slot, from the operating system's CSPRNG."""
        return cls(meter_id, {authority: secrets.token_bytes(KEY_BYTES) for authority in Authority})

    def key(self, authority: Authority) -> bytes:
        try:
            return self.keys[authority]
        except KeyError:
            raise ValueError(f"this key set has no {authority.slot_name} key") from None

    def save(self, path: Path) -> None:
        """Write the keys as JSON, readable by the owner only; an existing file is
        never overwritten (losing a meter's keys locks its commands out)."""
        text = json.dumps({"meter_id": f"{self.meter_id:016x}",
                           "keys": {a.slot_name: key.hex() for a, key in self.keys.items()}},
                          indent=2) + "\n"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)

    @classmethod
    def load(cls, path: Path) -> "KeySet":
        try:
            content = json.loads(Path(path).read_text())
            names = {authority.slot_name: authority for authority in Authority}
            unknown = set(content["keys"]) - set(names)
            if unknown:
                raise ValueError(f"unknown slots {', '.join(sorted(unknown))}")
            return cls(int(content["meter_id"], 16),
                       {names[name]: bytes.fromhex(key) for name, key in content["keys"].items()})
        except OSError as error:
            raise ValueError(f"cannot read the key file: {error}") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a refmeter key file: {error}") from None


@dataclass(frozen=True)
class CommandFrame:
    """What the host writes to the security unit's command registers."""

    header: dict[str, int]
    ciphertext: bytes      #: 16 bytes
    tag: bytes             #: TAG_BYTES bytes


def build_command(key: bytes, *, meter_title: bytes, authority: Authority, counter: int,
                  address: int, value: bytes,
                  sender_title: bytes = DEFAULT_SENDER_TITLE) -> CommandFrame:
    """An authenticated write of ``value`` (the register's wire bytes) to ``address``."""
    if len(sender_title) != 8:
        raise ValueError(f"A system title is 8 bytes, not {len(sender_title)}")
    if not 0 < counter < 1 << 32:
        raise ValueError(f"Invocation counter {counter} is not in 1..2^32-1")
    nonce = sender_title + counter.to_bytes(4, "big")
    sealed = AESGCM(key).encrypt(nonce, command_plaintext(value),
                                 command_aad(meter_title, authority, address, len(value)))
    # A GCM tag truncated to its first bytes, as SP 800-38D and DLMS define it.
    return CommandFrame(
        header={"invocation_counter": counter, "address": address, "length": len(value),
                "authority": authority, "system_title": int.from_bytes(sender_title, "big")},
        ciphertext=sealed[:-16], tag=sealed[-16:][:TAG_BYTES])


def _status(meter: Meter) -> RegisterValue:
    status = meter.read("security_status")
    assert isinstance(status, RegisterValue)
    if status["result"] == SecurityResult.NO_ENGINE:
        raise MeterError(f"meter at {meter.link.url} has no security unit in its bitstream "
                         f"(docs/security.md: boards that cannot hold it yet)")
    return status


def _completed(status: RegisterValue) -> int:
    """Commands the unit has finished, modulo its counters' width (they wrap)."""
    width = next(field.width for field in status.register.fields
                 if field.name == "commands_accepted")
    return (status["commands_accepted"] + status["commands_refused"]) % (1 << width)


def _wait_until_idle(meter: Meter, done) -> RegisterValue:
    deadline = time.monotonic() + _COMPLETION_TIMEOUT_S
    while True:
        status = _status(meter)
        if not status["busy"] and done(status):
            return status
        if time.monotonic() > deadline:
            raise MeterError(f"meter at {meter.link.url}: the security unit did not finish "
                             f"within {_COMPLETION_TIMEOUT_S:g} s")
        time.sleep(0.01)


def provision(meter: Meter, keys: KeySet) -> None:
    """Write every key of ``keys`` into the meter's slots; the seal must be open."""
    identity = meter.identity()
    if identity.meter_id != keys.meter_id:
        raise MeterError(f"these keys are for meter {keys.meter_id:#018x}, the meter at "
                         f"{meter.link.url} is {identity.meter_id:#018x}")
    _status(meter)
    if not meter.read("seal_status")["open"]:
        raise MeterError(f"meter at {meter.link.url}: the seal is closed, so key slots can be "
                         f"written only by commands under their current keys")
    for authority, key in keys.keys.items():
        meter.write(f"key_{authority.slot_name}", int.from_bytes(key, "big"))
    provisioned = _status(meter)["provisioned"]
    missing = [a.slot_name for a in keys.keys if not provisioned >> a & 1]
    if missing:
        raise MeterError(f"meter at {meter.link.url} did not take the keys of {', '.join(missing)}")


def zeroise(meter: Meter) -> None:
    """Erase every key slot, with the seal open (a command can do it too:
    ``send_command(..., "zeroise_keys", 1)``)."""
    meter.write("zeroise_keys", 1)
    status = _wait_until_idle(meter, lambda status: True)
    if status["provisioned"]:
        raise MeterError(f"meter at {meter.link.url} still holds keys after zeroisation")


def send_command(meter: Meter, keys: KeySet, authority: Authority, register: str,
                 value: "int | Mapping[str, int]", *, counter: int | None = None,
                 sender_title: bytes = DEFAULT_SENDER_TITLE) -> int:
    """Write ``register`` through an authenticated command under ``authority``'s key;
    return the invocation counter used (by default one above the slot's last).

    Raises :class:`CommandRefused` with the unit's reason if it refuses.
    """
    definition = meter.register_map[register]
    if counter is None:
        counter = int(meter.read(f"invocation_counter_{authority.slot_name}")) + 1
    frame = build_command(keys.key(authority), meter_title=system_title(keys.meter_id),
                          authority=authority, counter=counter,
                          address=meter.register_map.address_of(register),
                          value=encode(definition, value), sender_title=sender_title)
    before = _completed(_status(meter))
    meter.write("command_header", frame.header)
    meter.write("command_value", int.from_bytes(frame.ciphertext, "big"))
    meter.write("command_tag", int.from_bytes(frame.tag, "big"))
    status = _wait_until_idle(meter, lambda status: _completed(status) != before)
    result = SecurityResult(status["result"])
    if result is not SecurityResult.ACCEPTED:
        reason = result.name
        if result is SecurityResult.REFUSED:
            reason += f" ({Status(status['bus_status']).name})"
        raise CommandRefused(f"meter at {meter.link.url} refused the {authority.slot_name} "
                             f"command writing {register} (counter {counter}): {reason}", result)
    return counter


@dataclass(frozen=True)
class SealedReading:
    """Twelve bytes the meter sealed, with its GMAC and the seal counter."""

    meter_id: int
    kind: SealKind
    data: bytes
    counter: int
    tag: bytes

    def verify(self, reading_key: bytes) -> None:
        """Raise :class:`MeterError` unless the tag is the meter's over these bytes."""
        nonce = system_title(self.meter_id) + self.counter.to_bytes(4, "big")
        try:
            # GMAC is GCM with no plaintext: the "ciphertext" is the tag alone, and
            # AESGCM checks only full tags, so the truncated one is checked by hand.
            full = AESGCM(reading_key).encrypt(nonce, b"", seal_aad(self.kind, self.data))
            if not secrets.compare_digest(full[:TAG_BYTES], self.tag):
                raise InvalidTag
        except InvalidTag:
            raise MeterError(f"the sealed reading (counter {self.counter}) does not verify "
                             f"under the reading key: it was altered, or the key is not "
                             f"this meter's") from None

    @property
    def snapshot(self) -> dict[str, int]:
        """A :attr:`SealKind.SNAPSHOT`'s fields."""
        return {"utc_seconds": int.from_bytes(self.data[0:4], "big"),
                "active_import_wh": int.from_bytes(self.data[4:8], "big"),
                "active_export_wh": int.from_bytes(self.data[8:12], "big")}


def seal_reading(meter: Meter, kind: SealKind) -> SealedReading:
    """Ask the meter to seal a reading: a snapshot, or the load-profile record in the
    slot of ``profile_select`` (select it first, see :mod:`.profile`)."""
    status = _status(meter)
    if not status["provisioned"] >> Authority.READING & 1:
        raise CommandRefused(f"meter at {meter.link.url} has no reading key to seal with",
                             SecurityResult.NO_KEY)
    before = meter.read("reading_seal")["counter"]
    meter.write("seal_request", kind)
    # Checked above: the reading key is there, so a seal either comes or the counter
    # is exhausted.
    status = _wait_until_idle(meter, lambda status: status["result"] == SecurityResult.EXHAUSTED
                              or meter.read("reading_seal")["counter"] != before)
    if status["result"] == SecurityResult.EXHAUSTED:
        raise CommandRefused(f"meter at {meter.link.url} has used every seal counter under "
                             f"this reading key: provision a new one", SecurityResult.EXHAUSTED)
    seal = meter.read("reading_seal")
    return SealedReading(meter.identity().meter_id, kind,
                         int(meter.read("sealed_reading")).to_bytes(SEALED_BYTES, "big"),
                         seal["counter"], seal["tag"].to_bytes(TAG_BYTES, "big"))
