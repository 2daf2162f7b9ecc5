"""The fixed-point arithmetic of one phase, stated once.

Every sample set (one voltage and one current code, signed 24-bit) goes through,
in this order (``>>`` is an arithmetic shift, i.e. floor division by a power of 2;
``sat`` clamps to signed 24 bits)::

    # DC removal, identical for voltage and current: a first-order high-pass
    # with its corner at fs / (2 pi 2**DC_SHIFT) (0.08 Hz at 8 kSPS).
    ac     = x - (dc >> DC_SHIFT)
    dc     = dc + ac
    x_ac   = sat(ac)

    # Phase compensation: the voltage is delayed by one sample, the current by a
    # first-order all-pass whose delay is (1 - a) / (1 + a) samples, so a = 0
    # means no skew and a sub-sample skew either way is a choice of a (Q1.17).
    v_d    = v_ac of the previous sample
    i_c    = sat(i_ac_prev + ((a * (i_ac - i_c_prev)) >> PHASE_COEFFICIENT_FRACTION))

    # Products, exact.
    p, v2, i2 = v_d * i_c, v_d * v_d, i_c * i_c

    # Window sums: every `window_samples` sets they are published and cleared,
    # and the no-load gate is set for the next window from |sum_p|.
    # Energy: unless the gate is closed, E += p; one quantum of import (export)
    # is counted and taken from E when E >= Q (E <= -Q).

The gate starts open. Energy quanta are counted one at a time, which is exact
because a sample's |p| <= 2**46 is far below any useful quantum.

Fundamental reactive power Q1 (IEEE 1459) comes from demodulating ``v_d`` and
``i_c`` with a reference at the line frequency, over fundamental windows of
``N = 2**log2`` sample sets (independent of ``window_samples``)::

    # The reference: a 32-bit phase, cycles * 2**32, advanced by nco_step.
    c, s   = reference(theta >> 22)        # 17-bit, amplitude 2**16 (see reference())
    theta  = theta + nco_step  (mod 2**32)
    Vc += v_d * c;  Vs += v_d * s;  Ic += i_c * c;  Is += i_c * s
    Pf += p                                # active energy over the same window

    # At the end of each fundamental window (then all five sums restart from 0):
    q = ((Vc >> 32) * Is - (Vs >> 32) * Ic) >> (log2 - 1)
    R = R + q  unless |q| < noload_threshold
    importing = Pf >= 0

    # Last in every set: R >= Q counts a +R quantum and leaves R - Q, else R <= -Q
    # counts a -R quantum and leaves R + Q. +R is quadrant I while importing, II
    # while exporting; -R is IV while importing, III while exporting.

``q`` is the window's fundamental reactive energy in the units of ``E`` (codes²
samples): with Vc = (N/2) V1 cos(phi_v) 2**16 and so on, Vc*Is - Vs*Ic =
(N/2)² V1 I1 sin(phi_v - phi_i) 2**32, and Q1 N = V1 I1 sin(phi) N / 2. Positive
``q`` is lagging (inductive) current. Keeping only Vc and Vs >> 32 (21 bits of a
voltage near full scale) costs at most 2**-20 of Q1; the demodulation's leakage
from twice the line frequency cancels in the cross product (it is real), so the
window need not hold whole cycles.
"""

import math

#: ADC code width, bits (ADS131M0x).
SAMPLE_WIDTH = 24
#: DC removal time constant: 2**DC_SHIFT samples.
DC_SHIFT = 14
#: Width of the DC accumulator: a sample's range times 2**DC_SHIFT, plus sign.
DC_WIDTH = SAMPLE_WIDTH + DC_SHIFT
#: Phase coefficient ``a``: signed Q1.17 (18 bits); |a| < 0.5 is the useful range.
PHASE_COEFFICIENT_WIDTH = 18
PHASE_COEFFICIENT_FRACTION = 17
#: Products of two saturated samples: |p| <= 2**46.
PRODUCT_WIDTH = 2 * SAMPLE_WIDTH
#: Longest window, samples (a bit over 1 s at 8 kSPS).
WINDOW_WIDTH = 13
MAX_WINDOW = (1 << WINDOW_WIDTH) - 1
#: Window sums: PRODUCT_WIDTH + WINDOW_WIDTH bits, signed.
SUM_WIDTH = PRODUCT_WIDTH + WINDOW_WIDTH
#: Energy quantum and no-load threshold, unsigned raw units.
QUANTUM_WIDTH = 60
#: Energy fraction E: |E| < Q + max |p|.
FRACTION_WIDTH = QUANTUM_WIDTH + 2
#: Quantum counters (wrap).
COUNTER_WIDTH = 32

#: Fundamental windows: 2**log2 sample sets, log2 from 1 to 14 (the cross product
#: keeps 64 bits); 13 (1.024 s at 8 kSPS) in the meter.
FUNDAMENTAL_WINDOW_LOG2 = 13
MAX_FUNDAMENTAL_WINDOW_LOG2 = 14
#: Reference phase, bits, and the table index taken from its top.
NCO_WIDTH = 32
REFERENCE_INDEX_WIDTH = 10
#: Reference values: signed, amplitude 2**16 (so 17 bits).
REFERENCE_WIDTH = 17
#: The reactive energy fraction R and a window's q, signed.
REACTIVE_WIDTH = 64

SAMPLE_MAX = (1 << (SAMPLE_WIDTH - 1)) - 1
SAMPLE_MIN = -SAMPLE_MAX  # symmetric, so a product never exceeds 2**46


#: Energy of one watt-hour, J.
JOULES_PER_WH = 3600

# Nominal front end: the scales calibration starts from. A board's dividers and
# current sensors set the real ones; the simulated front end uses these.
#: Sample sets per second: ADS131M0x at OSR 512 with an 8.192 MHz CLKIN.
SAMPLE_RATE_HZ = 8000
#: Peak voltage at the largest code, V: 1.1 Un of 230 V with 10 % 5th harmonic fits.
VOLTAGE_FULL_SCALE_V = 400.0
#: Peak current at the largest code, A: Imax of 100 A with 40 % 5th harmonic fits.
CURRENT_FULL_SCALE_A = 200.0


def nco_step(frequency_hz: float, sample_rate_hz: float = SAMPLE_RATE_HZ) -> int:
    """The ``nco_step`` for a line frequency: cycles per sample set * 2**32."""
    return round(frequency_hz / sample_rate_hz * (1 << NCO_WIDTH)) % (1 << NCO_WIDTH)


def _quarter_wave() -> tuple[int, ...]:
    # cos((r + 1/2) pi/512) * 2**16 for r in 0..255: half a step off zero, the four
    # quadrants mirror each other exactly. Only r = 0 rounds to 2**16; it is clipped,
    # so every entry fits 16 unsigned bits.
    return tuple(min(round(math.cos((r + 0.5) * math.pi / 512) * 65536), 65535)
                 for r in range(256))


#: The quarter wave the reference is built from, unsigned 16-bit.
QUARTER_WAVE = _quarter_wave()


def reference(index: int) -> tuple[int, int]:
    """(cos, sin) of the reference at table index ``index`` (0 to 1023): the quarter
    wave mirrored into all four quadrants, i.e. about 2**16 cos and sin of
    2 pi (index + 1/2) / 1024."""
    quadrant, r = divmod(index, 256)
    near, far = QUARTER_WAVE[r], QUARTER_WAVE[255 - r]
    return ((near, -far, -near, far)[quadrant], (far, near, -far, -near)[quadrant])
