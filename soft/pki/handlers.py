"""The link from verified commands to the meter's gateware: the control module
checks who may do what, the gateware's security unit then checks the
authenticated register writes under the originator's own slot key."""

from refmeter.gateware.interlock import Action
from refmeter.gateware.security.authority import Authority

from ..device import Meter
from ..events import read_events
from ..measurements import phases, read_phase
from ..profile import read_profile
from ..security import KeySet, send_command
from ..switch import request_switch
from .access import MessageCode
from .control import Handler
from .message import SignedCommand
from .roles import COMMAND_AUTHORITY, Role

__all__ = ["GatewareLink"]


class GatewareLink:
    """The meter's gateware as the control module drives it, and the slot keys it
    holds: ``keys`` are the ones provisioned (:meth:`ControlModule.keyset`), and
    :meth:`rekey` keeps them current when a key-agreement anchor changes."""

    def __init__(self, meter: Meter, keys: KeySet):
        self.meter = meter
        self.keys = keys

    def handlers(self) -> dict[MessageCode, Handler]:
        """The messages the gateware can carry out today.

        * SET_CLOCK (8 bytes, UTC seconds): an authenticated ``utc_set`` write under
          the originator's slot; the reply is the meter's clock after it, 8 bytes.
        * READ_ENERGY: the reply is total +A and -A, Wh, 8 bytes each.
        * READ_LOAD_PROFILE: the reply is every record in the profile ring, oldest
          first, 16 bytes each: the interval's end (UTC seconds, 8 bytes), +A and -A
          (Wh, 4 bytes each).
        * READ_VOLTAGE_QUALITY: the reply is, per phase, Urms (mV, 4 bytes) and the
          line frequency (mHz, 4 bytes; 0 without voltage), then the number of
          voltage-event edges in the meter's log (sags, swells, interruptions; 4 bytes).
        * DISCONNECT_SUPPLY: the interlock's two sources, each a request under its own
          slot with one request id (the command counter's low 16 bits): the
          originator's signature and the broker's MAC, both checked here, become the
          originator's and the broker's requests, and the interlock applies its own
          rules (cooldown, isolation, state) to them.
        * ARM_RECONNECTION: one request under the originator's slot.

        A switching reply is the interlock's answer: accepted (1 byte, 0 or 1) and its
        reason code (1 byte, ``refmeter.gateware.interlock.Reason``).
        """
        return {MessageCode.SET_CLOCK: self._set_clock, MessageCode.READ_ENERGY: self._read_energy,
                MessageCode.READ_LOAD_PROFILE: self._read_load_profile,
                MessageCode.READ_VOLTAGE_QUALITY: self._read_voltage_quality,
                MessageCode.DISCONNECT_SUPPLY: self._disconnect,
                MessageCode.ARM_RECONNECTION: self._arm_reconnection}

    def _set_clock(self, command: SignedCommand, role: Role) -> bytes:
        send_command(self.meter, self.keys, COMMAND_AUTHORITY[role], "utc_set",
                     int.from_bytes(command.payload, "big"))
        return int(self.meter.utc_time().timestamp()).to_bytes(8, "big")

    def _read_energy(self, command: SignedCommand, role: Role) -> bytes:
        return b"".join(int(self.meter.read(name)).to_bytes(8, "big")
                        for name in ("active_import_wh_total", "active_export_wh_total"))

    def _read_load_profile(self, command: SignedCommand, role: Role) -> bytes:
        return b"".join(int(record.end.timestamp()).to_bytes(8, "big")
                        + record.active_import_wh.to_bytes(4, "big")
                        + record.active_export_wh.to_bytes(4, "big")
                        for record in read_profile(self.meter))

    def _read_voltage_quality(self, command: SignedCommand, role: Role) -> bytes:
        quality = b""
        for phase in phases(self.meter):
            measured = read_phase(self.meter, phase)
            quality += (round(measured.voltage_rms_v * 1000).to_bytes(4, "big")
                        + round((measured.frequency_hz or 0) * 1000).to_bytes(4, "big"))
        return quality + len(read_events(self.meter)).to_bytes(4, "big")

    def _disconnect(self, command: SignedCommand, role: Role) -> bytes:
        return self._switch(command, Action.REMOTE_DISCONNECT,
                            (COMMAND_AUTHORITY[role], Authority.BROKER))

    def _arm_reconnection(self, command: SignedCommand, role: Role) -> bytes:
        return self._switch(command, Action.REMOTE_RECONNECT, (COMMAND_AUTHORITY[role],))

    def _switch(self, command: SignedCommand, action: Action,
                authorities: tuple[Authority, ...]) -> bytes:
        for authority in authorities:
            answer = request_switch(self.meter, self.keys, authority, action,
                                    request_id=command.counter % (1 << 16))
        return bytes([answer.accepted, answer.reason.value])

    def rekey(self, old: KeySet, new: KeySet) -> None:
        """Move every slot whose key changed to its new key, by a command under the
        slot's current key (the one way the gateware lets a sealed slot change)."""
        for authority, key in new.keys.items():
            if key != old.key(authority):
                send_command(self.meter, self.keys, authority, f"key_{authority.slot_name}",
                             int.from_bytes(key, "big"))
                self.keys = KeySet(new.meter_id, self.keys.keys | {authority: key})
