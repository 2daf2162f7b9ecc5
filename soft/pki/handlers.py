"""Handlers that carry verified commands to the meter's gateware: the control
module checks who may do what, the gateware's security unit then checks the
authenticated register write under the originator's own slot key."""

from ..device import Meter
from ..security import KeySet, send_command
from .access import MessageCode
from .control import Handler
from .message import SignedCommand
from .roles import COMMAND_AUTHORITY, Role

__all__ = ["meter_handlers"]


def meter_handlers(meter: Meter, keys: KeySet) -> dict[MessageCode, Handler]:
    """The messages this meter's gateware can carry out today, for ``meter``
    provisioned with ``keys`` (the keys :meth:`ControlModule.keyset` agreed).

    * SET_CLOCK (8 bytes, UTC seconds): an authenticated ``utc_set`` write under
      the originator's slot; the reply is the meter's clock after it, 8 bytes.
    * READ_ENERGY: the reply is total +A and -A, Wh, 8 bytes each.
    """
    def set_clock(command: SignedCommand, role: Role) -> bytes:
        send_command(meter, keys, COMMAND_AUTHORITY[role], "utc_set",
                     int.from_bytes(command.payload, "big"))
        return int(meter.utc_time().timestamp()).to_bytes(8, "big")

    def read_energy(command: SignedCommand, role: Role) -> bytes:
        return b"".join(int(meter.read(name)).to_bytes(8, "big")
                        for name in ("active_import_wh_total", "active_export_wh_total"))

    return {MessageCode.SET_CLOCK: set_clock, MessageCode.READ_ENERGY: read_energy}
