"""Auxiliary load control (EV charger, heat pump): remote switch and reduce with a
per-meter delay, and the consumer's override."""

import hashlib

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import AuxLevel

__all__ = ["AuxLoadControl", "aux_delay_fraction"]

#: Bits of a meter's delay fraction: its delay is ``fraction / 2**16`` of the window.
FRACTION_BITS = 16


def aux_delay_fraction(meter_id: int) -> int:
    """The fraction (of ``2**16``) of the delay window this meter waits before an aux
    request takes effect: from a hash of its EUI-64, so a fleet spreads its load steps
    over the window while each meter always waits the same time (a head-end can
    predict it, an observer of one meter learns nothing of the others)."""
    digest = hashlib.sha256(b"refmeter aux delay" + meter_id.to_bytes(8, "big")).digest()
    return int.from_bytes(digest[:FRACTION_BITS // 8], "big")


class AuxLoadControl(wiring.Component):
    """The level the auxiliary load may draw.

    An accepted request (``schedule``) takes effect after this meter's delay,
    ``aux_delay_fraction(meter_id) / 2**16`` of ``delay_window_s``; a later request
    replaces a waiting one and waits afresh. ``override`` restores the full load at
    once for ``override_s`` seconds, then the remotely scheduled level applies again.

    Attributes
    ----------
    schedule : stream in, :class:`AuxLevel`
        Accepted remote requests (always ready).
    delay_window_s : Signal(16), in
    override : Signal(), in
        One-cycle pulse: the consumer's override button.
    tick_s : Signal(), in
    level : Signal(AuxLevel), out
        What the load may draw now.
    scheduled : Signal(AuxLevel), out
        The level last requested remotely (in effect, or waiting for the delay).
    overridden : Signal(), out
        The consumer's override is in force.
    """

    schedule: In(stream.Signature(AuxLevel, always_ready=True))
    delay_window_s: In(16)
    override: In(1)
    tick_s: In(1)
    level: Out(AuxLevel)
    scheduled: Out(AuxLevel)
    overridden: Out(1)

    def __init__(self, *, meter_id: int, override_s: int):
        if not 0 <= meter_id < 1 << 64:
            raise ValueError(f"Meter id must be an EUI-64, not {meter_id!r}")
        if override_s < 1:
            raise ValueError(f"Override time must be at least 1 s, not {override_s}")
        self._fraction = aux_delay_fraction(meter_id)
        self._override_s = override_s
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        remote_level = Signal(AuxLevel)  # the level in effect by remote request
        waiting = Signal()
        waited_s = Signal(16)
        override_left_s = Signal(range(self._override_s + 1))
        delay_s = (self.delay_window_s * self._fraction)[FRACTION_BITS:]

        with m.If(self.schedule.valid):
            m.d.sync += [self.scheduled.eq(self.schedule.payload), waiting.eq(1), waited_s.eq(0)]
        with m.Elif(waiting & (waited_s >= delay_s)):
            m.d.sync += [remote_level.eq(self.scheduled), waiting.eq(0)]
        with m.Elif(waiting & self.tick_s):
            m.d.sync += waited_s.eq(waited_s + 1)

        with m.If(self.override):
            m.d.sync += override_left_s.eq(self._override_s)
        with m.Elif(self.tick_s & self.overridden):
            m.d.sync += override_left_s.eq(override_left_s - 1)
        m.d.comb += self.overridden.eq(override_left_s != 0)
        with m.If(self.overridden):
            m.d.comb += self.level.eq(AuxLevel.FULL)
        with m.Else():
            m.d.comb += self.level.eq(remote_level)
        return m
