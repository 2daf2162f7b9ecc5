"""A latching relay: coil pulses of a minimum length, a settling time, and contact
feedback checked against the last command."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RelaySignature", "LatchingRelayDriver", "LatchingRelayModel"]


class RelaySignature(wiring.Signature):
    """A latching relay as its driver sees it: the two coils and the auxiliary contact.

    Members
    -------
    close : out
        Set coil: while high, the relay is driven closed (supply on).
    open : out
        Reset coil: while high, the relay is driven open (supply off).
    closed : in
        Contact feedback: 1 while the contacts are closed (synchronous to the domain).
    """

    def __init__(self):
        super().__init__({"close": Out(1), "open": Out(1), "closed": In(1)})


class LatchingRelayDriver(wiring.Component):
    """Moves a latching relay to the position ``closed_wanted`` asks for.

    Each operation is one coil pulse of at least ``pulse_ms`` followed by at least
    ``settle_ms`` of rest, after which the contacts must agree with the command. A
    wish to open cuts a closing pulse short and opens at once (opening is the safe
    direction); a wish to close waits for the rest to end. After reset the driver
    adopts the sensed position instead of pulsing, so a power cut never switches the
    supply by itself.

    Attributes
    ----------
    relay : :class:`RelaySignature`, out
    closed_wanted : Signal(), in
    tick_ms : Signal(), in
        One-cycle pulse every millisecond.
    commanded : Signal(), out
        The position last commanded (or adopted).
    busy : Signal(), out
        Adopting, pulsing or resting.
    operated : Signal(), out
        One-cycle pulse for each coil pulse started (for the switching budget).
    mismatch : Signal(), out
        At rest, the contacts disagree with ``commanded``.
    welded : Signal(), out
        ``mismatch`` with the relay commanded open: the contacts did not part.
    """

    relay: Out(RelaySignature())
    closed_wanted: In(1)
    tick_ms: In(1)
    commanded: Out(1)
    busy: Out(1)
    operated: Out(1)
    mismatch: Out(1)
    welded: Out(1)

    def __init__(self, *, pulse_ms: int, settle_ms: int):
        if pulse_ms < 1 or settle_ms < 1:
            raise ValueError(f"Relay pulse and settle times must be at least 1 ms, not "
                             f"{pulse_ms} and {settle_ms}")
        self._pulse_ms = pulse_ms
        self._settle_ms = settle_ms
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        adopted = Signal()
        pulsing = Signal()
        resting = Signal()
        # Ticks counted in this pulse or rest. `n` ticks after a start at least n - 1 ms
        # have passed, so each wait ends on its (length + 1)-th tick.
        elapsed_ms = Signal(range(max(self._pulse_ms, self._settle_ms) + 1))

        m.d.sync += self.operated.eq(0)
        with m.If(~adopted):
            m.d.sync += [self.commanded.eq(self.relay.closed), adopted.eq(1)]
        with m.Elif(pulsing & self.commanded & ~self.closed_wanted):
            m.d.sync += [self.commanded.eq(0), elapsed_ms.eq(0), self.operated.eq(1)]
        with m.Elif(pulsing):
            with m.If(self.tick_ms):
                with m.If(elapsed_ms == self._pulse_ms):
                    m.d.sync += [pulsing.eq(0), resting.eq(1), elapsed_ms.eq(0)]
                with m.Else():
                    m.d.sync += elapsed_ms.eq(elapsed_ms + 1)
        with m.Elif(resting):
            with m.If(self.tick_ms):
                with m.If(elapsed_ms == self._settle_ms):
                    m.d.sync += [resting.eq(0), elapsed_ms.eq(0)]
                with m.Else():
                    m.d.sync += elapsed_ms.eq(elapsed_ms + 1)
        with m.Elif(self.closed_wanted != self.commanded):
            m.d.sync += [pulsing.eq(1), self.commanded.eq(self.closed_wanted),
                         elapsed_ms.eq(0), self.operated.eq(1)]

        m.d.comb += [
            self.relay.close.eq(pulsing & self.commanded),
            self.relay.open.eq(pulsing & ~self.commanded),
            self.busy.eq(~adopted | pulsing | resting),
            self.mismatch.eq(~self.busy & (self.relay.closed != self.commanded)),
            self.welded.eq(self.mismatch & ~self.commanded),
        ]
        return m


class LatchingRelayModel(wiring.Component):
    """A latching relay's contacts, for simulations and for boards without relays:
    they close while the set coil is driven, open while the reset coil is, and
    otherwise stay where they are, as a latching relay's do.

    Parameters
    ----------
    closed : bool
        Where the contacts are at power-up.

    Attributes
    ----------
    relay : :class:`RelaySignature`, in (flipped): the coils in, the feedback out.
    """

    def __init__(self, *, closed: bool = True):
        self._closed = closed
        super().__init__({"relay": In(RelaySignature())})

    def elaborate(self, platform):
        m = Module()
        contacts = Signal(init=self._closed)
        with m.If(self.relay.close):
            m.d.sync += contacts.eq(1)
        with m.Elif(self.relay.open):
            m.d.sync += contacts.eq(0)
        m.d.comb += self.relay.closed.eq(contacts)
        return m

