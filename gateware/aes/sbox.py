"""The AES S-box, as tables and as a gate-level circuit.

:func:`sbox_table` and :func:`inverse_sbox_table` compute FIPS-197 section 5.1.1's
S-box from its definition (inversion in GF(2^8), then the affine map), so the RAM
contents come from the maths, not from a table typed in by hand.

The logic S-box is Boyar and Peralta's depth-16 circuit ("A Small Depth-16 Circuit
for the AES S-Box", SEC 2012, eprint 2011/332): a linear top layer (8 -> 21 bits),
a non-linear middle (21 -> 18 bits, shared by the forward and the inverse S-box)
and a linear bottom layer (18 -> 8 bits). Sharing the middle makes an S-box that
does both directions cost little more than one that does only the forward one.
The gate lists below are transcribed from the paper's equations with bit ``x0``
the least significant input bit and ``s0`` the least significant output bit;
:func:`evaluate` runs them in Python and the tests check them against the tables
for all 256 inputs.
"""

from functools import cache

__all__ = ["sbox_table", "inverse_sbox_table", "evaluate", "circuit", "MIDDLE_INPUTS",
           "MIDDLE_OUTPUTS"]


def _gf_mul(a: int, b: int) -> int:
    """Product in GF(2^8) modulo the AES polynomial x^8 + x^4 + x^3 + x + 1."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a = (a << 1) ^ (0x11B if a & 0x80 else 0)
        b >>= 1
    return product


@cache
def sbox_table() -> tuple[int, ...]:
    """The forward S-box, indexed by input byte."""
    inverse = [0] * 256
    for a in range(1, 256):
        inverse[a] = next(b for b in range(1, 256) if _gf_mul(a, b) == 1)
    table = []
    for a in range(256):
        x = inverse[a]
        rotations = [((x << shift) | (x >> (8 - shift))) & 0xFF for shift in range(1, 5)]
        table.append(x ^ rotations[0] ^ rotations[1] ^ rotations[2] ^ rotations[3] ^ 0x63)
    return tuple(table)


@cache
def inverse_sbox_table() -> tuple[int, ...]:
    """The inverse S-box, indexed by input byte."""
    table = [0] * 256
    for x, y in enumerate(sbox_table()):
        table[y] = x
    return tuple(table)


# --- Boyar-Peralta depth-16 circuit ------------------------------------------------
# One gate a line: ``out = a OP b`` with OP one of ^ (XOR), & (AND), # (XNOR), or
# ``out = a`` (a wire).

_FORWARD_TOP = """
y0 = x0
y1 = x7 ^ x4
y2 = x7 ^ x2
y3 = x7 ^ x1
y4 = x4 ^ x2
t0 = x3 ^ x1
y5 = y1 ^ t0
t1 = x6 ^ x5
y6 = x0 ^ y5
y7 = x0 ^ t1
y8 = y5 ^ t1
t2 = x6 ^ x2
t3 = x5 ^ x2
y9 = y3 ^ y4
y10 = y5 ^ t2
y11 = t0 ^ t2
y12 = t0 ^ t3
y13 = y7 ^ y12
t4 = x4 ^ x0
y14 = t1 ^ t4
y15 = y1 ^ y14
t5 = x1 ^ x0
y16 = t1 ^ t5
y17 = y2 ^ y16
y18 = y2 ^ y8
y19 = y15 ^ y13
y20 = y1 ^ t3
"""

_INVERSE_TOP = """
y17 = x7 ^ x4
y16 = x6 # x4
y2 = x7 # x6
y1 = x4 ^ x3
y18 = x3 # x0
t0 = x1 ^ x0
y6 = x6 # y17
y14 = y16 ^ t0
y7 = x0 # y1
y8 = y2 ^ y18
y9 = y2 ^ t0
y3 = y1 ^ t0
y19 = x5 # y1
t1 = x6 ^ x1
y13 = x5 # y14
y15 = y18 ^ t1
y4 = x3 ^ y6
t2 = x5 # x2
t3 = x2 # x1
t4 = x5 # x3
y5 = y16 ^ t2
y12 = t1 ^ t4
y20 = y1 ^ t3
y11 = y8 ^ y20
y10 = y8 ^ t3
y0 = x7 ^ t2
"""

_MIDDLE = """
t0 = y3 ^ y12
t1 = y9 & y5
t2 = y17 & y6
t3 = y10 ^ t1
t4 = y14 & y0
t5 = t4 ^ t1
t6 = y3 & y12
t7 = y16 & y7
t8 = t0 ^ t6
t9 = y15 & y13
t10 = t9 ^ t6
t11 = y1 & y11
t12 = y4 & y20
t13 = t12 ^ t11
t14 = y2 & y8
t15 = t14 ^ t11
t16 = t3 ^ t2
t17 = t5 ^ y18
t18 = t8 ^ t7
t19 = t10 ^ t15
t20 = t16 ^ t13
t21 = t17 ^ t15
t22 = t18 ^ t13
t23 = t19 ^ y19
t24 = t22 ^ t23
t25 = t22 & t20
t26 = t21 ^ t25
t27 = t20 ^ t21
t28 = t23 ^ t25
t29 = t28 & t27
t30 = t26 & t24
t31 = t20 & t23
t32 = t27 & t31
t33 = t27 ^ t25
t34 = t21 & t22
t35 = t24 & t34
t36 = t24 ^ t25
t37 = t21 ^ t29
t38 = t32 ^ t33
t39 = t23 ^ t30
t40 = t35 ^ t36
t41 = t38 ^ t40
t42 = t37 ^ t39
t43 = t37 ^ t38
t44 = t39 ^ t40
t45 = t42 ^ t41
z0 = t38 & y7
z1 = t37 & y13
z2 = t42 & y11
z3 = t45 & y20
z4 = t41 & y8
z5 = t44 & y9
z6 = t40 & y17
z7 = t39 & y14
z8 = t43 & y3
z9 = t38 & y16
z10 = t37 & y15
z11 = t42 & y1
z12 = t45 & y4
z13 = t41 & y2
z14 = t44 & y5
z15 = t40 & y6
z16 = t39 & y0
z17 = t43 & y12
"""

_FORWARD_BOTTOM = """
t0 = z11 ^ z12
t1 = z0 ^ z6
t2 = z14 ^ z16
t3 = z15 ^ z5
t4 = z4 ^ z8
t5 = z17 ^ z11
t6 = z12 ^ t5
t7 = z14 ^ t3
t8 = z1 ^ z9
t9 = z2 ^ z3
t10 = z3 ^ t4
t11 = z10 ^ t2
t12 = z16 ^ z1
t13 = z0 ^ t0
t14 = z2 ^ z11
t15 = z5 ^ t1
t16 = z6 ^ t0
t17 = z7 ^ t1
t18 = z8 ^ t8
t19 = z13 ^ t4
t20 = t0 ^ t1
t21 = t1 ^ t7
t22 = t3 ^ t12
t23 = t18 ^ t2
t24 = t15 ^ t9
t25 = t6 ^ t10
t26 = t7 ^ t9
t27 = t8 ^ t10
t28 = t11 ^ t14
t29 = t11 ^ t17
s0 = t6 # t23
s1 = t13 # t27
s2 = t25 ^ t29
s3 = t20 ^ t22
s4 = t6 ^ t21
s5 = t19 # t28
s6 = t16 # t26
s7 = t6 ^ t24
"""

_INVERSE_BOTTOM = """
t0 = z2 ^ z11
t1 = z8 ^ z9
t2 = z4 ^ z12
t3 = z15 ^ z0
t4 = z16 ^ z6
t5 = z14 ^ z1
t6 = z17 ^ z10
t7 = t0 ^ t1
t8 = z0 ^ z3
t9 = z5 ^ z13
t10 = z7 ^ t4
t11 = t0 ^ t3
t12 = z14 ^ z16
t13 = z17 ^ z1
t14 = z17 ^ z12
t15 = z4 ^ z9
t16 = z7 ^ z11
t17 = z8 ^ t2
t18 = z13 ^ t5
t19 = t2 ^ t3
t20 = t4 ^ t6
t22 = t2 ^ t7
t23 = t7 ^ t8
t24 = t5 ^ t7
t25 = t6 ^ t10
t26 = t9 ^ t11
t27 = t10 ^ t18
t28 = t11 ^ t25
t29 = t15 ^ t20
s0 = t9 ^ t16
s1 = t14 ^ t23
s2 = t19 ^ t24
s3 = t23 ^ t27
s4 = t12 ^ t22
s5 = t17 ^ t28
s6 = t26 ^ t29
s7 = t13 ^ t22
"""

#: Wires between the layers.
MIDDLE_INPUTS = tuple(f"y{index}" for index in range(21))
MIDDLE_OUTPUTS = tuple(f"z{index}" for index in range(18))


def _parse(text: str) -> tuple[tuple[str, str, str, str | None], ...]:
    gates = []
    for line in text.strip().splitlines():
        output, expression = (part.strip() for part in line.split("="))
        tokens = expression.split()
        if len(tokens) == 1:
            gates.append((output, "=", tokens[0], None))
        else:
            left, operator, right = tokens
            gates.append((output, operator, left, right))
    return tuple(gates)


_LAYERS = {
    ("top", False): _parse(_FORWARD_TOP),
    ("top", True): _parse(_INVERSE_TOP),
    ("middle", None): _parse(_MIDDLE),
    ("bottom", False): _parse(_FORWARD_BOTTOM),
    ("bottom", True): _parse(_INVERSE_BOTTOM),
}


def circuit(layer: str, inverse: bool | None = None):
    """The gates of one layer: ``"top"`` (x0..x7 -> y0..y20), ``"middle"``
    (y -> z0..z17, the same for both directions) or ``"bottom"`` (z -> s0..s7)."""
    return _LAYERS[(layer, None if layer == "middle" else bool(inverse))]


def run_gates(gates, values: dict, *, xor, and_, not_, wire=lambda name, value: value) -> dict:
    """Evaluate ``gates`` over ``values`` (a name -> value dict, extended in place
    and returned) with the given operators: Python ints or Amaranth values alike.
    ``wire(name, value)`` may replace each gate's output (with a named signal, so
    that a netlist shares it rather than copying the expression into every use)."""
    for output, operator, left, right in gates:
        if operator == "=":
            values[output] = values[left]
            continue
        if operator == "^":
            value = xor(values[left], values[right])
        elif operator == "&":
            value = and_(values[left], values[right])
        elif operator == "#":
            value = not_(xor(values[left], values[right]))
        else:  # pragma: no cover - the tables above only use these
            raise ValueError(f"unknown gate {operator!r}")
        values[output] = wire(output, value)
    return values


def evaluate(x: int, *, inverse: bool = False) -> int:
    """The circuit's output for input byte ``x``, computed gate by gate in Python."""
    ops = dict(xor=lambda a, b: a ^ b, and_=lambda a, b: a & b, not_=lambda a: a ^ 1)
    values = run_gates(circuit("top", inverse), {f"x{bit}": (x >> bit) & 1 for bit in range(8)},
                       **ops)
    values = run_gates(circuit("middle"), {name: values[name] for name in MIDDLE_INPUTS}, **ops)
    values = run_gates(circuit("bottom", inverse),
                       {name: values[name] for name in MIDDLE_OUTPUTS}, **ops)
    return sum(values[f"s{bit}"] << bit for bit in range(8))
