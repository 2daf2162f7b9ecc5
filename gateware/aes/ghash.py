"""GHASH: the multiply-accumulate of GCM in GF(2^128), a few bits per cycle.

GCM (NIST SP 800-38D, section 6.4) hashes blocks X1..Xm under the hash key H as
Y0 = 0, Yi = (Yi-1 xor Xi) . H, in GF(2^128) defined by x^128 + x^7 + x^2 + x + 1,
with a *bit-reflected* map from blocks to polynomials: the first (most significant)
bit of a block is the coefficient of x^0, its last bit that of x^127. Every
128-bit port here is a big-endian integer, as in :mod:`.core`; inside, the
registers hold polynomials with bit i the coefficient of x^i (the reverse
order, which costs only wiring).

Digit-serial multiplication
---------------------------
A block's product A . H, with A = Y xor X, is computed by Horner's rule over the
*digits* of H, ``digit`` coefficients at a time, highest degrees first::

    Z = 0;  for each digit h_t of H, from the top:  Z = Z . x^digit  xor  h_t(x) . A

Each step multiplies by a fixed power of x (shifts with a few XORs of reduction)
and adds ``digit`` shifted copies of A gated by the digit's bits, so a step is a
shallow XOR tree whose width is ``digit``: the logic grows linearly with
``digit`` and the cycles fall as 128 / ``digit``. H sits in a register that
rotates by ``digit`` positions a step, so its current digit is always at the same
place and it is whole again after the last step. A (``Y xor X``) is loaded when
the block is taken, and Z, the accumulator, is cleared at the same time (a
synchronous reset, which costs an iCE40 or ECP5 flip-flop nothing).

Cycles
------
A block is taken in one cycle and multiplied in the next 128 / ``digit``, so
blocks offered back to back go in every 128 / ``digit`` + 1 cycles
(:func:`ghash_cycles_per_block`). Paired with an AES engine, choose ``digit`` so
that this is at most the engine's cycles per block: 4 (33 cycles) beside the
52-cycle column datapath, 16 (9 cycles) beside the 10-cycle round datapath.
"""

from functools import cache

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Ghash", "BLOCK_LAYOUT", "DIGITS", "ghash_cycles_per_block"]

#: Digit sizes (bits of H consumed per cycle): divisors of 128 up to 32. Wider
#: digits would take thousands of LUTs more for a speed no AES engine here can use
#: (32 already takes 5 cycles a block against the fastest engine's 10).
DIGITS = (1, 2, 4, 8, 16, 32)

#: A block for :class:`Ghash`: X, and whether to stop at Y xor X (``finish``).
BLOCK_LAYOUT = data.StructLayout({"data": 128, "finish": 1})

#: x^128 = x^7 + x^2 + x + 1 in GF(2^128): the reduction, bit i = coefficient of x^i.
_REDUCTION = (1 << 7) | (1 << 2) | (1 << 1) | 1


def ghash_cycles_per_block(digit: int) -> int:
    """Cycles between blocks offered back to back: one to take a block, 128 /
    ``digit`` to multiply it."""
    if digit not in DIGITS:
        raise ValueError(f"digit must be one of {', '.join(map(str, DIGITS))}, not {digit!r}")
    return 128 // digit + 1


@cache
def _times_x_power(power: int) -> tuple[tuple[int, ...], ...]:
    """Multiplication by x^``power`` modulo the field polynomial, as a linear map:
    entry i lists the input coefficients whose XOR is output coefficient i."""
    sources = [[] for _ in range(128)]
    for degree in range(128):
        product = 1 << degree
        for _ in range(power):
            product <<= 1
            if product >> 128:
                product ^= (1 << 128) | _REDUCTION
        for output in range(128):
            if (product >> output) & 1:
                sources[output].append(degree)
    return tuple(tuple(entry) for entry in sources)


def _times_x(polynomial, power: int):
    """``polynomial`` (128 bits, bit i the coefficient of x^i) times x^``power``,
    reduced: a shift, and XORs where the reduction folds the top back in."""
    terms = []
    for sources in _times_x_power(power):
        term = Const(0, 1)
        for degree in sources:
            term = term ^ polynomial[degree]
        terms.append(term)
    return Cat(*terms)


def _reflect(value):
    """A big-endian 128-bit block as a polynomial (bit i the coefficient of x^i), or
    back: its bits in reverse order."""
    return Cat(*(value[127 - bit] for bit in range(128)))


class Ghash(wiring.Component):
    """GHASH of a sequence of blocks under a hash key, ``digit`` bits of H per cycle.

    Taking a hash key starts a new hash (Y = 0); each block taken then makes
    Y = (Y xor X) . H. Y is final when ``busy`` is low: after a hash key, after
    the multiplication of the last block taken, and until the next block is taken.
    GCM's tag, Y xor E(K, J0), is one more addition without the multiplication: a
    block marked ``finish`` puts Y xor X on ``sum``.

    Parameters (keyword-only)
    -------------------------
    digit : int
        Coefficients of H consumed per cycle, one of :data:`DIGITS`:
        a block takes 128 / ``digit`` + 1 cycles.

    Ports
    -----
    hash_key : In(stream.Signature(128))
        H. Taken whenever the multiplier is idle; taking it clears Y, so a hash
        key starts every message, even one under the previous key.
    block : In(stream.Signature(BLOCK_LAYOUT))
        X (``data``), and ``finish``: 0 to multiply, 1 to add it to Y into ``sum``
        and stop. Taken whenever the multiplier is idle and no hash key is
        offered (a hash key offered with a block goes first).
    y : Out(128)
        Y. While ``busy`` is high it holds intermediate values.
    sum : Out(128)
        Y xor X after a ``finish``, until the next hash key or block; zero after
        a hash key and after a block's multiplication. While ``busy`` is high it
        holds the multiplier's operand, Y xor X of the block.
    busy : Out(1)
        A block is being multiplied.

    ``y`` and ``sum`` while ``busy`` are the hash's secrets as much as H is: a mode
    must not show them on any port a host can read (from one Y of known blocks H
    can be solved for, and then every tag under the key forged).
    """

    def __init__(self, *, digit: int = 4):
        ghash_cycles_per_block(digit)       # checks it
        self._digit = digit
        super().__init__({
            "hash_key": In(stream.Signature(128)),
            "block": In(stream.Signature(BLOCK_LAYOUT)),
            "y": Out(128),
            "sum": Out(128),
            "busy": Out(1),
        })

    @property
    def digit(self) -> int:
        return self._digit

    @property
    def cycles_per_block(self) -> int:
        """Cycles between blocks offered back to back (see :func:`ghash_cycles_per_block`)."""
        return ghash_cycles_per_block(self._digit)

    def elaborate(self, platform):
        m = Module()
        digit = self._digit
        steps = 128 // digit

        # Polynomials, bit i the coefficient of x^i. H and Z need no reset: Y is
        # defined from the first hash key on, and H before it is used.
        h = Signal(128, reset_less=True)
        a = Signal(128)                     # the operand Y ^ X, or after a finish, the sum
        z = Signal(128, reset_less=True)    # the accumulator: Y between blocks
        step = Signal(range(steps))
        last_step = self.busy & (step == steps - 1)

        idle = ~self.busy
        take_key = idle & self.hash_key.valid
        take_block = idle & ~self.hash_key.valid & self.block.valid
        multiply = take_block & ~self.block.payload.finish
        m.d.comb += [
            self.hash_key.ready.eq(idle),
            self.block.ready.eq(idle & ~self.hash_key.valid),
            self.y.eq(_reflect(z)),
            self.sum.eq(_reflect(a)),
        ]

        with m.If(take_key):
            m.d.sync += h.eq(_reflect(self.hash_key.payload))
        with m.Elif(self.busy):
            # Rotate up by one digit: the next digit moves to the top.
            m.d.sync += h.eq(h.rotate_left(digit))

        # The operand is cleared when it is no longer needed (a synchronous reset,
        # free in an iCE40 or ECP5 flip-flop), so that ``sum`` shows only sums.
        with m.If(take_block):
            m.d.sync += a.eq(z ^ _reflect(self.block.payload.data))
        with m.Elif(take_key | last_step):
            m.d.sync += a.eq(0)

        # One Horner step: Z . x^digit xor h_t(x) . A, with h_t the top digit of H.
        step_result = _times_x(z, digit)
        for j in range(digit):
            step_result = step_result ^ (_times_x(a, j) & h[128 - digit + j].replicate(128))
        with m.If(take_key | multiply):
            m.d.sync += z.eq(0)
        with m.Elif(self.busy):
            m.d.sync += z.eq(step_result)

        with m.If(multiply):
            m.d.sync += [self.busy.eq(1), step.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += step.eq(step + 1)
            with m.If(last_step):
                m.d.sync += self.busy.eq(0)
        return m
