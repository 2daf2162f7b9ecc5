"""The interlock's event log: every request and happening, in a ring of block RAM the
host reads at its own pace (the same four ring registers as the other logs, see
:mod:`..metrology.ring`)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from ..metrology.ring import ring_registers, show_selected_record
from ..registers import Field, register_ports
from .layouts import InterlockEvent

__all__ = ["InterlockLog"]

_FIELD_DESCRIPTIONS = {
    "seconds": "UTC seconds when it was decided",
    "authority": "the request's key slot (0 supplier, 1 broker, 2 network, 3 reading, "
                 "4 local); 4 for happenings on the meter",
    "authenticated": "the request was verified by the security unit",
    "from_request": "1: the answer to a request; 0: a happening on the meter",
    "action": "what was asked for or happened (docs/interlock.md)",
    "target": "0 main circuit, 1 priority circuit, 2 auxiliary load",
    "request_id": "the request's id (0 for happenings)",
    "counter": "the request's invocation counter (0 for happenings)",
    "accepted": "1: carried out or scheduled; 0: refused (or a fault)",
    "reason": "why it ended so (docs/interlock.md)",
    "state": "class 70 control_state afterwards",
}


class InterlockLog(wiring.Component):
    """The interlock's events in a ring of block RAM, with its registers.

    Parameters
    ----------
    capacity : int
        Records the ring holds, a power of two from 2. 256 by default: 98-bit
        records take seven iCE40 block RAMs at any depth up to 256, and a day has
        at most ``86400 / cooldown`` remote switchings.

    Attributes
    ----------
    events : stream in, :class:`~.layouts.InterlockEvent`
        From ``LoadSwitchInterlock.event``; one record per cycle, always ready.

    Besides these it has one port per register of :attr:`REGISTERS`: the ring's
    ``interlock_event_*`` registers, whose record register has the fields of
    :class:`~.layouts.InterlockEvent`.
    """

    # The record register's fields are the event layout's, bit for bit.
    REGISTERS = ring_registers("interlock_event", "interlock event", tuple(
        Field(name, field.width, _FIELD_DESCRIPTIONS[name])
        for name, field in InterlockEvent.as_shape()))

    def __init__(self, *, capacity: int = 256):
        if not isinstance(capacity, int) or capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"Interlock log capacity must be a power of two from 2, not "
                             f"{capacity!r}")
        self._capacity = capacity
        super().__init__({
            "events": In(stream.Signature(InterlockEvent, always_ready=True)),
            **register_ports(self.REGISTERS),
        })

    @property
    def capacity(self) -> int:
        return self._capacity

    def elaborate(self, platform):
        m = Module()
        index_width = (self._capacity - 1).bit_length()
        m.submodules.ring = ring = Memory(shape=InterlockEvent, depth=self._capacity, init=[],
                                          attrs={"no_rw_check": 1})
        write = ring.write_port()
        read = ring.read_port(domain="comb")
        head = Signal(32)
        m.d.comb += [write.addr.eq(head[:index_width]), write.en.eq(self.events.valid),
                     write.data.eq(self.events.payload)]
        with m.If(self.events.valid):
            m.d.sync += head.eq(head + 1)
        show_selected_record(m, self, "interlock_event", read=read, head=head,
                             capacity=self._capacity,
                             hold=self.events.valid & (write.addr == read.addr))
        return m
