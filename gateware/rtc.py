"""UTC clock: seconds since 1970-01-01T00:00:00Z and milliseconds, from the system clock."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .registers import Access, Field, Guard, Register
from .security.authority import Authority

__all__ = ["RealTimeClock"]


class RealTimeClock(wiring.Component):
    """Free-running UTC counter with a millisecond tick.

    Parameters
    ----------
    clk_freq : int
        System clock frequency, Hz; a whole number of kHz so the millisecond is exact.

    The clock starts at the epoch after reset, until it is set.

    Attributes
    ----------
    set : stream in
        UTC seconds to set the clock to (the millisecond restarts at 0); always ready.
    seconds : Signal(32), out
        UTC seconds (unsigned: good until 2106).
    millisecond : Signal(range(1000)), out
        Milliseconds into the current second.
    tick_ms : Signal(), out
        One-cycle pulse at every millisecond, for timers elsewhere in the meter.
    """

    REGISTERS = (
        Register("utc_time", Access.RO, (
            Field("millisecond", 16, "milliseconds into the second, 0..999"),
            Field("seconds", 32, "UTC seconds since 1970-01-01T00:00:00Z"),
        ), "UTC time, read atomically (seconds and milliseconds of one instant)"),
        Register.number("utc_set", Access.WO, 32,
                        "set the clock to these UTC seconds: authenticated commands only",
                        guard=Guard.AUTHENTICATED,
                        authorities={Authority.SUPPLIER, Authority.BROKER, Authority.LOCAL}),
    )

    set: In(stream.Signature(32))
    seconds: Out(32)
    millisecond: Out(range(1000))
    tick_ms: Out(1)

    def __init__(self, *, clk_freq: int):
        if clk_freq < 1000 or clk_freq % 1000:
            raise ValueError(f"Clock frequency must be a whole number of kHz, not {clk_freq} Hz")
        self._cycles_per_ms = clk_freq // 1000
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        prescaler = Signal(range(self._cycles_per_ms))

        m.d.comb += self.set.ready.eq(1)
        m.d.sync += self.tick_ms.eq(0)
        with m.If(self.set.valid):
            m.d.sync += [self.seconds.eq(self.set.payload), self.millisecond.eq(0),
                         prescaler.eq(0)]
        with m.Elif(prescaler == self._cycles_per_ms - 1):
            m.d.sync += [prescaler.eq(0), self.tick_ms.eq(1)]
            with m.If(self.millisecond == 999):
                m.d.sync += [self.millisecond.eq(0), self.seconds.eq(self.seconds + 1)]
            with m.Else():
                m.d.sync += self.millisecond.eq(self.millisecond + 1)
        with m.Else():
            m.d.sync += prescaler.eq(prescaler + 1)
        return m
