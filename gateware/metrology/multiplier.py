"""A small sequential signed multiplier: one shift-and-add per cycle.

Metrology has about 1,500 clock cycles per sample set, so one multiplier of a few
dozen logic cells, shared by every product of a phase, replaces the several
DSP tiles that a product per cycle would take (the UP5K has only eight).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SequentialMultiplier"]


class SequentialMultiplier(wiring.Component):
    """``product = a * b``, exact, ``b_width + 1`` cycles after ``start``.

    ``a`` and ``b`` are sampled on the ``start`` cycle (ignored while ``busy``);
    ``product`` is valid once ``busy`` falls and holds until the next start.
    """

    def __init__(self, *, a_width: int, b_width: int):
        if a_width < 2 or b_width < 2:
            raise ValueError(f"Operand widths must be at least 2 bits, not {a_width} and {b_width}")
        self._a_width, self._b_width = a_width, b_width
        super().__init__({
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "start": In(1),
            "busy": Out(1),
            "product": Out(signed(a_width + b_width)),
        })

    @property
    def cycles(self) -> int:
        """Cycles from ``start`` to the product (``busy`` is high for all but the last)."""
        return self._b_width + 1

    def elaborate(self, platform):
        m = Module()
        a_width, b_width = self._a_width, self._b_width

        multiplicand = Signal(a_width)          # |a|
        # High half accumulates; low half starts as |b| and shifts out as it is used.
        partial = Signal(a_width + b_width + 1)
        negative = Signal()
        steps = Signal(range(b_width + 1))

        with m.If(self.busy):
            augend = partial[b_width:] + Mux(partial[0], multiplicand, 0)
            next_partial = Cat(partial[1:b_width], augend)
            m.d.sync += [partial.eq(next_partial), steps.eq(steps - 1)]
            with m.If(steps == 1):
                m.d.sync += [
                    self.busy.eq(0),
                    self.product.eq(Mux(negative, -next_partial, next_partial)),
                ]
        with m.Elif(self.start):
            m.d.sync += [
                multiplicand.eq(Mux(self.a < 0, -self.a, self.a)),
                partial.eq(Mux(self.b < 0, -self.b, self.b)),
                negative.eq((self.a < 0) ^ (self.b < 0)),
                steps.eq(b_width),
                self.busy.eq(1),
            ]
        return m
