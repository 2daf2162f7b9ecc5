"""The load profile: energy per interval with UTC stamps, kept by the gateware.

Every interval the meter writes one record into a ring in RAM (the SPRAMs on the
iCE40 UltraPlus, block RAM elsewhere), whether or not a host is connected; a host
reads the ring through registers at its own pace.

Intervals end where the UTC seconds are a multiple of ``profile_interval_s`` (with
the default 1800 s, at :00 and :30 of every hour). A record holds the end of its
interval and the active energy imported and exported in it (Wh quanta: the
difference of the meter's total energy counters, modulo 2**32), with flags for
intervals that are not one whole interval of the configured length. Records are
numbered from 0 at power-up; record ``n`` is in slot ``n mod capacity``, so the
ring holds records ``head - capacity`` to ``head - 1``.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from ..registers import Access, Field, Guard, Register, register_ports
from ..single_port import SinglePortRam
from .ring import ring_registers

__all__ = ["LoadProfile", "ProfileRecord", "DEFAULT_INTERVAL_S", "INTERVAL_WIDTH",
           "ENERGY_WIDTH", "CHECK_CYCLES", "SELECT_CYCLES", "RECORD_WORD_WIDTH"]

#: Interval length after reset, s: half-hourly, as settlement uses.
DEFAULT_INTERVAL_S = 1800
#: Width of ``profile_interval_s``: up to 131071 s, so a daily (86400 s) profile fits.
INTERVAL_WIDTH = 17
#: Width of a record's energy: 2**30 Wh (1 GWh) is far more than any meter passes in
#: the longest interval, and with 3 flags a record fits 12 bytes.
ENERGY_WIDTH = 30
#: The ring's RAM word: a record is two of them, the low 64 bits and the other 31.
RECORD_WORD_WIDTH = 64
#: Clock cycles from a change of ``profile_select`` until ``profile_record`` shows the
#: slot: a read takes two cycles, and a record written meanwhile two more.
SELECT_CYCLES = 8
#: Clock cycles from a change of the UTC seconds to its record (a bit-serial division).
CHECK_CYCLES = 33


class ProfileRecord(data.Struct):
    """One load-profile record, as the ring stores it and ``profile_record`` shows it."""

    end_seconds: 32                 #: UTC seconds at the end of the interval
    active_import_wh: ENERGY_WIDTH  #: +A energy in the interval, Wh quanta
    active_export_wh: ENERGY_WIDTH  #: -A energy in the interval, Wh quanta
    power_up: 1                     #: the interval began at power-up or reset: it is partial
    clock_set: 1                    #: the clock was set during the interval
    interval_changed: 1             #: the interval length changed during the interval


class LoadProfile(wiring.Component):
    """Interval energy in a ring in RAM, with its registers.

    Parameters
    ----------
    capacity : int
        Records the ring holds, a power of two. The ring is a
        :class:`~refmeter.gateware.single_port.SinglePortRam` of ``2 * capacity``
        words of 64 bits: record ``n`` (:class:`ProfileRecord`, 95 bits) is its low
        64 bits in word ``2 * slot`` and the rest in word ``2 * slot + 1``. On the
        iCE40 UltraPlus that is its four SPRAMs, so up to 8192 records. Recording
        writes both words in the two cycles from its boundary; in every other
        cycle the RAM reads the selected record for ``profile_record``, upper word
        then lower, so a host's reads never change what is recorded.

    Attributes
    ----------
    utc_seconds : Signal(32), in
        UTC seconds (the meter's clock, :class:`~refmeter.gateware.rtc.RealTimeClock`).
        Changes must be more than :data:`CHECK_CYCLES` cycles apart, as a clock that
        ticks once a second is.
    tick_ms : Signal(), in
        The clock's millisecond strobe. The seconds advance in a cycle with it; a
        change of ``utc_seconds`` without it is the clock being set.
    import_wh, export_wh : Signal(32), in
        Running active-energy quanta counters (+A, -A), Wh; they wrap at 2**32.

    Besides these it has one port per register of :attr:`REGISTERS` (see
    :func:`~refmeter.gateware.registers.register_ports`).

    Behaviour: each time ``utc_seconds`` changes, the new second is checked against
    the interval length in force at that moment. If it is a multiple of it, the
    record of the interval ending there is written and the energy counters are
    sampled as the start of the next interval. The seconds and counters seen in the
    first cycle after reset are the baseline: the first interval is partial and
    flagged ``power_up``. A new interval length applies from the next second: the
    interval in progress ends at the first multiple of the new length and is flagged
    ``interval_changed``. A length of 0 writes no records; the interval in progress
    stays open (its energy is kept) until a non-zero length is set.

    ``profile_record`` shows the record in the slot of ``profile_select`` (its low
    bits) at most :data:`SELECT_CYCLES` cycles after ``profile_select`` changes,
    all fields from one instant: it takes a record's two words at once, from two
    reads with no write between them. Whether that slot still holds record
    ``profile_select`` is the host's to check against ``profile_head``: it did if,
    read after the record, ``head - capacity <= profile_select < head``. The head
    counts a new record in the cycle that ``profile_record`` takes its first read of
    the RAM after the write, so a record and a head read after it are never from
    either side of a write to the slot shown.
    """

    REGISTERS = (
        Register.number("profile_interval_s", Access.RW, INTERVAL_WIDTH,
                        "load-profile interval, s: intervals end where UTC seconds are a "
                        "multiple of it; applies from the next second; 0 records nothing "
                        "(the interval in progress stays open)",
                        init=DEFAULT_INTERVAL_S, guard=Guard.SEAL),
        *ring_registers("profile", "load-profile", (
            Field("end_seconds", 32, "UTC seconds at the end of the interval"),
            Field("active_import_wh", ENERGY_WIDTH, "+A energy in the interval, Wh quanta"),
            Field("active_export_wh", ENERGY_WIDTH, "-A energy in the interval, Wh quanta"),
            Field("power_up", 1, "1: the interval began at power-up or reset (partial)"),
            Field("clock_set", 1, "1: the clock was set during the interval"),
            Field("interval_changed", 1, "1: the interval length changed during the interval"),
        )),
    )

    def __init__(self, *, capacity: int):
        if not isinstance(capacity, int) or capacity < 1 or capacity & (capacity - 1):
            raise ValueError(f"Load-profile capacity must be a power of two, not {capacity!r}")
        if capacity > 1 << 24:
            raise ValueError(f"Load-profile capacity of {capacity} records is more than any "
                             f"supported FPGA's block RAM holds (at most {1 << 24})")
        self._capacity = capacity
        super().__init__({
            "utc_seconds": In(32),
            "tick_ms": In(1),
            "import_wh": In(32),
            "export_wh": In(32),
            **register_ports(self.REGISTERS),
        })

    @property
    def capacity(self) -> int:
        """Records the ring holds."""
        return self._capacity

    @property
    def registers(self) -> tuple[Register, ...]:
        return self.REGISTERS

    def elaborate(self, platform):
        m = Module()
        index_width = (self._capacity - 1).bit_length()

        # The ring is a single-port RAM (the UP5K's SPRAMs): a record is two 64-bit
        # words, written in the two cycles from its boundary, and read back, upper
        # word then lower, in every other pair of cycles (see the class documentation).
        m.submodules.ring = ring = SinglePortRam(depth=2 * self._capacity,
                                                 width=RECORD_WORD_WIDTH)
        record = Signal(ProfileRecord)
        # The upper word being written, or just read.
        upper = Signal(len(record.as_value()) - RECORD_WORD_WIDTH)
        writing_upper = Signal()
        upper_read = Signal()   # the RAM shows the selected record's upper word
        lower_read = Signal()   # the RAM shows its lower word, read right after the upper
        published = Signal(init=1)  # the record last written shows where it is selected
        selected = self.profile_select.value[:index_width]

        head = Signal(32)
        started = Signal()
        # Only the low bits of the counters make the low bits of their difference.
        import_start = Signal(ENERGY_WIDTH)
        export_start = Signal(ENERGY_WIDTH)
        import_now = self.import_wh[:ENERGY_WIDTH]
        export_now = self.export_wh[:ENERGY_WIDTH]
        flags = Signal(data.StructLayout({"power_up": 1, "clock_set": 1, "interval_changed": 1}),
                       init={"power_up": 1})

        # The second being checked, and the interval length it is checked against.
        seconds = Signal(32)
        interval = Signal(INTERVAL_WIDTH, init=DEFAULT_INTERVAL_S)
        # Restoring division, one dividend bit per cycle, most significant first.
        # Only the remainder is kept; it is always below `interval`.
        checking = Signal()
        bit_index = Signal(range(32))
        remainder = Signal(INTERVAL_WIDTH)
        partial = Signal(INTERVAL_WIDTH + 1)
        next_remainder = Signal(INTERVAL_WIDTH)
        m.d.comb += partial.eq(Cat(seconds.bit_select(bit_index, 1), remainder))
        with m.If(partial >= interval):
            m.d.comb += next_remainder.eq(partial - interval)
        with m.Else():
            m.d.comb += next_remainder.eq(partial)

        boundary = Signal()
        with m.If(checking):
            m.d.sync += [remainder.eq(next_remainder), bit_index.eq(bit_index - 1)]
            with m.If(bit_index == 0):
                m.d.sync += checking.eq(0)
                m.d.comb += boundary.eq((next_remainder == 0) & (interval != 0))

        # At a boundary: write the record, start the next interval.
        m.d.comb += [
            record.end_seconds.eq(seconds),
            record.active_import_wh.eq(import_now - import_start),
            record.active_export_wh.eq(export_now - export_start),
            record.power_up.eq(flags.power_up),
            record.clock_set.eq(flags.clock_set),
            record.interval_changed.eq(flags.interval_changed),
        ]
        with m.If(boundary):
            m.d.comb += [ring.addr.eq(Cat(Const(0, 1), head[:index_width])),
                         ring.w_data.eq(record.as_value()[:RECORD_WORD_WIDTH]), ring.w_en.eq(1)]
            m.d.sync += [
                upper.eq(record.as_value()[RECORD_WORD_WIDTH:]),
                writing_upper.eq(1),
                published.eq(0),
                import_start.eq(import_now),
                export_start.eq(export_now),
                flags.eq(0),
            ]
        with m.Elif(writing_upper):
            m.d.comb += [ring.addr.eq(Cat(Const(1, 1), head[:index_width])), ring.w_data.eq(upper),
                         ring.w_en.eq(1)]
            m.d.sync += writing_upper.eq(0)
        # Otherwise the RAM reads the selected record, upper word then lower word; the
        # record register takes both at once, so it only ever holds one whole record.
        with m.Elif(~upper_read):
            m.d.comb += ring.addr.eq(Cat(Const(1, 1), selected))
            with m.If(lower_read):
                m.d.sync += self.profile_record.eq(Cat(ring.r_data, upper))
                # The head counts a record once it shows where it is selected, so a
                # host that reads the record and then the head sees both or neither.
                with m.If(~published):
                    m.d.sync += [head.eq(head + 1), published.eq(1)]
        with m.Else():
            m.d.comb += ring.addr.eq(Cat(Const(0, 1), selected))
            m.d.sync += upper.eq(ring.r_data)
        reading = ~boundary & ~writing_upper
        m.d.sync += [upper_read.eq(reading & ~upper_read), lower_read.eq(reading & upper_read)]

        # A new second (or the clock being set) starts a check. This comes after the
        # boundary logic so that what happens in a boundary's cycle counts for the
        # next interval. The first cycle after reset only takes the baseline.
        with m.If(~started):
            m.d.sync += [
                started.eq(1),
                seconds.eq(self.utc_seconds),
                import_start.eq(import_now),
                export_start.eq(export_now),
            ]
        with m.Elif(self.utc_seconds != seconds):
            requested = self.profile_interval_s.value
            m.d.sync += [
                seconds.eq(self.utc_seconds),
                interval.eq(requested),
                remainder.eq(0),
                bit_index.eq(31),
                checking.eq(1),
            ]
            with m.If(~self.tick_ms):
                m.d.sync += flags.clock_set.eq(1)
            with m.If(requested != interval):
                m.d.sync += flags.interval_changed.eq(1)

        m.d.comb += [self.profile_head.value.eq(head),
                     self.profile_capacity.value.eq(self._capacity)]
        return m
