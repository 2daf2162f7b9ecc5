"""The limiter's monitored value on a meter: active power as a block demand, from the
energy quanta the metrology counts."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Demand"]

_SECONDS_PER_HOUR = 3600


class Demand(wiring.Component):
    """Average net active power over each period of ``period_s`` seconds, W.

    Each energy quantum is one watt-hour, so a period's net quanta times
    ``3600 / period_s`` is its average power: with the default minute the
    resolution is 60 W, far below any limiter threshold (the interlock's floor is
    1 kW), and it costs a counter instead of a multiplier on the metrology's sums.
    This is the "average active power" monitored value of DLMS class 71, as a
    demand register's last average.

    Parameters
    ----------
    phases : int
        Phases whose quanta add up (import on one phase nets against export on
        another, as the energy totals do).
    period_s : int
        Demand period, s of ``tick_ms`` (real time, even where a simulation shortens
        the interlock's seconds); must divide an hour.

    Attributes
    ----------
    tick_ms : Signal(), in
    imported, exported : Signal(phases), in
        A bit per phase that pulses with each Wh imported or exported.
    power : stream out, signed(32)
        The last period's average power, W (negative while exporting), once a period.
    """

    def __init__(self, *, phases: int = 1, period_s: int = 60):
        if period_s < 1 or _SECONDS_PER_HOUR % period_s:
            raise ValueError(f"Demand period must divide an hour, not {period_s} s")
        self._phases = phases
        self._period_ms = period_s * 1000
        self._watts_per_quantum = _SECONDS_PER_HOUR // period_s
        super().__init__({
            "tick_ms": In(1),
            "imported": In(phases),
            "exported": In(phases),
            "power": Out(stream.Signature(signed(32), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        # Quanta so far this period: 20 bits hold a minute of 31 MW, beyond any meter.
        quanta = Signal(signed(20))
        ms = Signal(range(self._period_ms))
        net = Signal(signed(4))
        m.d.comb += net.eq(sum(self.imported[phase] for phase in range(self._phases))
                           - sum(self.exported[phase] for phase in range(self._phases)))
        period_ends = self.tick_ms & (ms == self._period_ms - 1)
        with m.If(period_ends):
            m.d.sync += [ms.eq(0), quanta.eq(net),
                         self.power.valid.eq(1),
                         self.power.payload.eq((quanta + net) * self._watts_per_quantum)]
        with m.Else():
            m.d.sync += [ms.eq(ms + self.tick_ms), quanta.eq(quanta + net),
                         self.power.valid.eq(0)]
        return m
