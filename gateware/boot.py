"""The A/B slot selector of a boot image: which configuration image the FPGA
warm-boots into, with fallback when a new image never confirms.

On the iCE40 this is the logic of image 0, a small boot image whose ``S1 S0`` and
``BOOT`` drive ``SB_WARMBOOT`` to load image 1 (slot A) or image 2 (slot B); on the
ECP5 the same decision picks the multiboot image. It implements the specification
that ``refmeter.soft.pki.slots`` models (docs/pki.md), on the boot record the
host keeps in the configuration flash:

======================  ==============================  ============================
record                  boot                            record written back first
======================  ==============================  ============================
no trial                the active slot                 unchanged
trial, not yet tried    the trial slot                  trial marked tried
trial, already tried    the active slot (fallback)      trial dropped
======================  ==============================  ============================

A record that cannot be right (flash damage) is read safely: an active slot that is
not 1 or 2 is slot 1 (A), and a trial that is not the other slot is no trial. The
record is written back (``write`` until ``written``) before ``boot`` rises, so a
power cut between the two boots the same way again or falls back, never loops.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["NO_TRIAL", "SLOT_A", "SLOT_B", "BootSelector"]

#: Warm-boot image numbers (S1 S0) of the slots, and "no trial" in a record.
NO_TRIAL, SLOT_A, SLOT_B = 0, 1, 2


class BootSelector(wiring.Component):
    """Reads a boot record once ``start`` rises, writes back the record that
    follows, then boots the chosen image.

    Attributes
    ----------
    start : Signal(), in
        The boot record is valid (read from flash); held or pulsed.
    active, trial : Signal(2), in
        The record's confirmed slot and the slot on trial (:data:`NO_TRIAL` for none).
    tried : Signal(), in
        The trial has been booted once and has not confirmed.
    write : Signal(), out
        Write ``next_active``, ``next_trial``, ``next_tried`` back to flash; held until
        ``written``.
    written : Signal(), in
        The record is in flash.
    image : Signal(2), out
        The image to boot: ``SB_WARMBOOT``'s S1 S0.
    boot : Signal(), out
        ``SB_WARMBOOT``'s BOOT; rises once the record is written, and stays.
    """

    start: In(1)
    active: In(2)
    trial: In(2)
    tried: In(1)
    write: Out(1)
    written: In(1)
    next_active: Out(2)
    next_trial: Out(2)
    next_tried: Out(1)
    image: Out(2)
    boot: Out(1)

    def elaborate(self, platform):
        m = Module()
        active = Signal(2)
        other = Signal(2)
        has_trial = Signal()
        m.d.comb += [
            active.eq(Mux(self.active == SLOT_B, SLOT_B, SLOT_A)),
            other.eq(Mux(active == SLOT_A, SLOT_B, SLOT_A)),
            has_trial.eq(self.trial == other),
        ]
        with m.FSM():
            with m.State("READ"):
                with m.If(self.start):
                    with m.If(has_trial & ~self.tried):
                        m.d.sync += [self.image.eq(other), self.next_trial.eq(other),
                                     self.next_tried.eq(1)]
                    with m.Else():
                        m.d.sync += [self.image.eq(active), self.next_trial.eq(NO_TRIAL),
                                     self.next_tried.eq(0)]
                    m.d.sync += self.next_active.eq(active)
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += self.write.eq(1)
                with m.If(self.written):
                    m.next = "BOOT"
            with m.State("BOOT"):
                m.d.comb += self.boot.eq(1)
        return m
