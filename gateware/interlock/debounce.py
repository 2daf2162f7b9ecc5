"""A debounced switch or push button."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Debouncer"]


class Debouncer(wiring.Component):
    """A contact's level once it has held still: ``level`` takes the value of ``raw``
    after ``raw`` has differed from it for ``stable_ms`` millisecond ticks in a row, so
    a bounce (any return to ``level``) starts the wait again.

    ``raw`` must already be synchronous to the clock domain (a board's input buffer
    and synchroniser).

    Attributes
    ----------
    raw : Signal(), in
    tick_ms : Signal(), in
        One-cycle pulse every millisecond.
    level : Signal(), out
        The debounced level (0 after reset).
    pressed : Signal(), out
        One-cycle pulse when ``level`` rises.
    """

    raw: In(1)
    tick_ms: In(1)
    level: Out(1)
    pressed: Out(1)

    def __init__(self, *, stable_ms: int):
        if stable_ms < 1:
            raise ValueError(f"Debounce time must be at least 1 ms, not {stable_ms}")
        self._stable_ms = stable_ms
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        differing_ms = Signal(range(self._stable_ms))
        m.d.sync += self.pressed.eq(0)
        with m.If(self.raw == self.level):
            m.d.sync += differing_ms.eq(0)
        with m.Elif(self.tick_ms):
            with m.If(differing_ms == self._stable_ms - 1):
                m.d.sync += [self.level.eq(self.raw), self.pressed.eq(self.raw),
                             differing_ms.eq(0)]
            with m.Else():
                m.d.sync += differing_ms.eq(differing_ms + 1)
        return m
