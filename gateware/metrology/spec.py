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
"""

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
