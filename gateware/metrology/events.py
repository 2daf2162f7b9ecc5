"""The voltage event log: each start and end of a sag, swell or interruption, with
its phase and UTC time, in a ring of block RAM kept by the gateware.

Every phase's :class:`~.line.LineMonitor` streams its event edges here; each edge
becomes one record, stamped with the meter's UTC clock when it is written (within a
few clock cycles of the half-cycle that decided it), whether or not a host is
connected. A host reads the ring through registers at its own pace, as it reads the
load profile: records are numbered from 0 at power-up, record ``n`` is in slot
``n mod capacity``, so the ring holds records ``head - capacity`` to ``head - 1``.
An event's duration is the time from its start record to its end record.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from ..registers import Field, Register, register_ports
from .line import HALF_CYCLE_MS_WIDTH, EventKind, VoltageEventEdge
from .ring import ring_registers, show_selected_record

__all__ = ["EventLog", "VoltageEventRecord", "EVENT_LOG_CAPACITY"]

#: Records of a meter's log, a power of two: 256 records of 64 bits are four iCE40
#: block RAMs (256 x 16 each) and, at a few events a day, months of history.
EVENT_LOG_CAPACITY = 256
#: Phases that can share one log (``phase`` is a 2-bit field).
MAX_PHASES = 3


class VoltageEventRecord(data.Struct):
    """One voltage event edge, as the ring stores it and ``voltage_event_record``
    shows it (63 bits: one 8-byte register read)."""

    seconds: 32                  #: UTC seconds when the edge was decided
    millisecond: 10              #: and milliseconds into that second, 0..999
    kind: EventKind              #: sag, swell or interruption
    end: 1                       #: 0: the event started; 1: it ended
    phase: 2                     #: 0 for l1, 1 for l2, 2 for l3
    value: HALF_CYCLE_MS_WIDTH   #: the event's extreme Urms(1/2)² so far, 2**30 codes²


class EventLog(wiring.Component):
    """Voltage event edges of every phase in a ring of block RAM, with its registers.

    Parameters
    ----------
    capacity : int
        Records the ring holds, a power of two from 2 (64-bit words in a
        :class:`~amaranth.lib.memory.Memory` with a read port of its own, so a
        host's reads never wait on logging or change it).
    phases : int
        Phases writing to the log, 1 to 3.

    Attributes
    ----------
    events : array of stream in, :data:`~.line.VoltageEventEdge`
        One per phase, from each phase's ``LineMonitor.events``. One edge is
        written per cycle, the lowest phase first: an edge waits at most as many
        cycles as there are edges of lower phases before it.
    utc_seconds : Signal(32), in
    utc_millisecond : Signal(10), in
        The meter's UTC clock (:class:`~refmeter.gateware.rtc.RealTimeClock`
        ``seconds`` and ``millisecond``), which stamps each record as it is written.

    Besides these it has one port per register of :attr:`REGISTERS`.
    ``voltage_event_record`` shows the record in the slot of
    ``voltage_event_select`` (its low bits) from two cycles after the select
    changes, all fields from one instant. It is record ``voltage_event_select`` if,
    read afterwards, ``head - capacity <= voltage_event_select < head``.
    """

    REGISTERS = ring_registers("voltage_event", "voltage event", (
            Field("seconds", 32, "UTC seconds when the edge was decided"),
            Field("millisecond", 10, "milliseconds into that second, 0..999"),
            Field("kind", 2, "0: sag (dip), 1: swell, 2: interruption (loss of voltage)"),
            Field("end", 1, "0: the event started; 1: it ended"),
            Field("phase", 2, "phase: 0 for l1, 1 for l2, 2 for l3"),
            Field("value", HALF_CYCLE_MS_WIDTH,
                  "Urms(1/2) squared, 2**30 codes²: the lowest since the sag began (sags, "
                  "interruptions) or the highest since the swell began (swells), up to "
                  "this edge"),
    ))

    def __init__(self, *, capacity: int, phases: int = 1):
        # At least 2, so that consecutive records go to different slots.
        if not isinstance(capacity, int) or capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"Event log capacity must be a power of two from 2, not "
                             f"{capacity!r}")
        if not 1 <= phases <= MAX_PHASES:
            raise ValueError(f"An event log serves 1 to {MAX_PHASES} phases, not {phases}")
        self._capacity = capacity
        self._phases = phases
        super().__init__({
            "events": In(stream.Signature(VoltageEventEdge)).array(phases),
            "utc_seconds": In(32),
            "utc_millisecond": In(10),
            **register_ports(self.REGISTERS),
        })

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def registers(self) -> tuple[Register, ...]:
        return self.REGISTERS

    def elaborate(self, platform):
        m = Module()
        index_width = (self._capacity - 1).bit_length()

        # As in LoadProfile: an asynchronous read port with the register after it
        # (`voltage_event_record`), which Yosys merges into the block RAM's read port.
        # The register holds while the slot it shows is written, so a read never meets
        # a write; a burst of records (several phases at once) goes to other slots, so
        # it does not delay the host's read.
        m.submodules.ring = ring = Memory(shape=VoltageEventRecord, depth=self._capacity,
                                          init=[], attrs={"no_rw_check": 1})
        write = ring.write_port()
        read = ring.read_port(domain="comb")

        head = Signal(32)
        # One edge per cycle, the lowest phase with one first. The data are selected
        # without a condition on the write: Yosys would otherwise make the condition
        # a write mask per bit, a LUT each.
        payload, phase = self.events[-1].payload, self._phases - 1
        for lower in reversed(range(self._phases - 1)):
            edges = self.events[lower]
            payload = VoltageEventEdge(Mux(edges.valid, edges.payload, payload))
            phase = Mux(edges.valid, lower, phase)
        writing = Const(0)  # so far: an edge of a lower phase is waiting
        for edges in self.events:
            m.d.comb += edges.ready.eq(~writing)
            writing = writing | edges.valid
        m.d.comb += [
            write.addr.eq(head[:index_width]),
            write.en.eq(writing),
            write.data.seconds.eq(self.utc_seconds),
            write.data.millisecond.eq(self.utc_millisecond),
            write.data.kind.eq(payload.kind),
            write.data.end.eq(payload.end),
            write.data.phase.eq(phase),
            write.data.value.eq(payload.value),
        ]
        with m.If(writing):
            m.d.sync += head.eq(head + 1)

        show_selected_record(m, self, "voltage_event", read=read, head=head,
                             capacity=self._capacity, hold=writing & (write.addr == read.addr))
        return m
