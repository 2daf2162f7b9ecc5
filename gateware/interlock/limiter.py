"""Sustained-threshold detection, and the class 71 limiter built on it."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SustainedThreshold", "Limiter"]

#: Width of the limiter's thresholds, W (up to 16.7 MW: all ones means "no limit").
THRESHOLD_WIDTH = 24
#: Width of the limiter's durations, s.
DURATION_WIDTH = 16


class SustainedThreshold(wiring.Component):
    """Whether measurements have stayed above a threshold long enough.

    ``over`` rises once every sample for ``min_over_s`` seconds (class 71
    ``min_over_threshold_duration``) has been above ``threshold``, and falls once
    every sample for ``min_under_s`` seconds has been at or below it. A single
    sample on the settled side starts the count again, so short peaks (a motor
    starting) never trip.

    Attributes
    ----------
    sample : stream in, ``shape``
        One measurement per window (always ready).
    threshold : Signal(``threshold_shape``), in
    min_over_s, min_under_s : Signal(16), in
    tick_s : Signal(), in
        One-cycle pulse every second.
    over : Signal(), out
    """

    def __init__(self, *, shape, threshold_shape):
        super().__init__({
            "sample": In(stream.Signature(shape, always_ready=True)),
            "threshold": In(threshold_shape),
            "min_over_s": In(DURATION_WIDTH),
            "min_under_s": In(DURATION_WIDTH),
            "tick_s": In(1),
            "over": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        above = Signal()  # the last sample was above the threshold
        crossed_s = Signal(DURATION_WIDTH)  # seconds the samples have been on the other side
        m.d.sync += above.eq(Mux(self.sample.valid, self.sample.payload > self.threshold, above))
        with m.If(self.sample.valid & ((self.sample.payload > self.threshold) == self.over)):
            m.d.sync += crossed_s.eq(0)
        with m.Elif(self.tick_s & (above != self.over)):
            with m.If(crossed_s >= Mux(self.over, self.min_under_s, self.min_over_s)):
                m.d.sync += [self.over.eq(~self.over), crossed_s.eq(0)]
            with m.Elif(crossed_s != (1 << DURATION_WIDTH) - 1):
                m.d.sync += crossed_s.eq(crossed_s + 1)
        return m


class Limiter(wiring.Component):
    """DLMS interface class 71 on active power: a normal threshold, and an emergency
    threshold while the emergency profile is active (from ``activation_s`` UTC for
    ``duration_s``). Thresholds below ``floor_w`` count as ``floor_w``, so no setting
    can trip a home drawing less.

    Attributes
    ----------
    active_power : stream in, signed(32)
        Active power, W (import positive), one per measurement window.
    utc_seconds : Signal(32), in
    tick_s : Signal(), in
    threshold_normal_w, threshold_emergency_w : Signal(24), in
    min_over_s, min_under_s : Signal(16), in
    emergency_activation_s : Signal(32), in
        UTC seconds when the emergency profile starts.
    emergency_duration_s : Signal(24), in
        How long it lasts; 0: no emergency.
    over : Signal(), out
        The monitored value is over the active threshold (sustained): trip.
    emergency_active : Signal(), out
    """

    active_power: In(stream.Signature(signed(32), always_ready=True))
    utc_seconds: In(32)
    tick_s: In(1)
    threshold_normal_w: In(THRESHOLD_WIDTH)
    threshold_emergency_w: In(THRESHOLD_WIDTH)
    min_over_s: In(DURATION_WIDTH)
    min_under_s: In(DURATION_WIDTH)
    emergency_activation_s: In(32)
    emergency_duration_s: In(24)
    over: Out(1)
    emergency_active: Out(1)

    def __init__(self, *, floor_w: int):
        if not 0 <= floor_w < 1 << THRESHOLD_WIDTH:
            raise ValueError(f"Limiter floor must be 0 to {(1 << THRESHOLD_WIDTH) - 1} W, "
                             f"not {floor_w}")
        self._floor_w = floor_w
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.sustained = sustained = SustainedThreshold(
            shape=signed(32), threshold_shape=THRESHOLD_WIDTH)
        wiring.connect(m, wiring.flipped(self.active_power), sustained.sample)
        # 33 bits, so a profile running past 2106 does not wrap to the past.
        emergency_end = self.emergency_activation_s + self.emergency_duration_s
        m.d.comb += self.emergency_active.eq((self.emergency_activation_s <= self.utc_seconds)
                                             & (self.utc_seconds < emergency_end))
        wanted = Mux(self.emergency_active, self.threshold_emergency_w, self.threshold_normal_w)
        m.d.comb += [
            sustained.threshold.eq(Mux(wanted < self._floor_w, self._floor_w, wanted)),
            sustained.min_over_s.eq(self.min_over_s),
            sustained.min_under_s.eq(self.min_under_s),
            sustained.tick_s.eq(self.tick_s),
            self.over.eq(sustained.over),
        ]
        return m
