"""Bit-exact model of :class:`~refmeter.gateware.metrology.phase.PhaseMetrology`.

It implements :mod:`refmeter.gateware.metrology.spec` on 64-bit integers,
compiled by numba, so accuracy runs of millions of samples take seconds instead
of the hours an RTL simulation would; the cross product at the end of each
fundamental window, which needs more than 64 bits, is done in Python.
``tests/test_metrology.py`` proves it equal to the gateware on random stimuli.
"""

from dataclasses import dataclass, field

import numba
import numpy as np

from refmeter.gateware.metrology import spec

__all__ = ["PhaseCalibration", "PhaseModel"]

# Indices into the state vector shared with the compiled kernel.
(_DC_V, _DC_I, _V_DELAYED, _I_PREVIOUS, _I_COMPENSATED, _SUM_P, _SUM_V, _SUM_I, _COUNT,
 _FRACTION, _IMPORT, _EXPORT, _RUNNING,
 _THETA, _VC, _VS, _IC, _IS, _SUM_PF, _FUNDAMENTAL_COUNT, _REACTIVE, _QUADRANT_1, _QUADRANT_2,
 _QUADRANT_3, _QUADRANT_4, _IMPORTING, _STATE_SIZE) = range(27)

#: The spec's constants, handed to the compiled kernel as an argument, like the
#: reference table: numba would freeze constants it read from ``spec`` into its cached
#: code, and a change to spec.py (another file) would not invalidate that cache.
_CONSTANTS = np.array([spec.DC_SHIFT, spec.PHASE_COEFFICIENT_FRACTION, spec.SAMPLE_MIN,
                       spec.SAMPLE_MAX, (1 << spec.NCO_WIDTH) - 1,
                       spec.NCO_WIDTH - spec.REFERENCE_INDEX_WIDTH], dtype=np.int64)
#: The reference, all 1024 values of spec.reference().
_COS, _SIN = (np.array(values, dtype=np.int64) for values in
              zip(*(spec.reference(index) for index in range(1 << spec.REFERENCE_INDEX_WIDTH))))


@dataclass(frozen=True)
class PhaseCalibration:
    """The calibration inputs of one phase (see ``PhaseMetrology``)."""

    energy_quantum: int
    noload_threshold: int = 0
    phase_coefficient: int = 0
    window_samples: int = 8000

    def __post_init__(self) -> None:
        limit = 1 << (spec.PHASE_COEFFICIENT_WIDTH - 1)
        if not -limit <= self.phase_coefficient < limit:
            raise ValueError(f"Phase coefficient {self.phase_coefficient} is not a signed Q1.17")
        for name in ("energy_quantum", "noload_threshold"):
            if not 0 <= getattr(self, name) < 1 << spec.QUANTUM_WIDTH:
                raise ValueError(f"{name} {getattr(self, name)} does not fit {spec.QUANTUM_WIDTH} bits")
        if not 0 <= self.window_samples <= spec.MAX_WINDOW:
            raise ValueError(f"Window of {self.window_samples} samples exceeds {spec.MAX_WINDOW}")


@numba.njit(cache=True)
def _saturate(value, low, high):
    return max(low, min(high, value))


@numba.njit(cache=True)
def _count_reactive_quantum(state, quantum):
    """The last step of every sample set: R >= Q counts a +R quantum, R <= -Q a -R one."""
    if state[_REACTIVE] >= quantum:
        state[_REACTIVE] -= quantum
        state[_QUADRANT_1 if state[_IMPORTING] else _QUADRANT_2] += 1
    elif state[_REACTIVE] <= -quantum:
        state[_REACTIVE] += quantum
        state[_QUADRANT_4 if state[_IMPORTING] else _QUADRANT_3] += 1


@numba.njit(cache=True)
def _run(voltage, current, start, coefficient, quantum, threshold, window, fundamental_window,
         nco_step, constants, cos, sin, state, windows, published):
    """Run from sample set ``start`` to the end of the block or of a fundamental
    window, whichever comes first; return the sample set after the last one run."""
    dc_shift, coefficient_fraction, sample_min, sample_max, nco_mask, index_shift = (
        constants[0], constants[1], constants[2], constants[3], constants[4], constants[5])
    dc_v, dc_i = state[_DC_V], state[_DC_I]
    v_delayed, i_previous, i_compensated = state[_V_DELAYED], state[_I_PREVIOUS], state[_I_COMPENSATED]
    sum_p, sum_v, sum_i, count = state[_SUM_P], state[_SUM_V], state[_SUM_I], state[_COUNT]
    fraction, imported, exported, running = state[_FRACTION], state[_IMPORT], state[_EXPORT], state[_RUNNING]
    theta, sum_pf, fundamental_count = state[_THETA], state[_SUM_PF], state[_FUNDAMENTAL_COUNT]
    vc, vs, ic, is_ = state[_VC], state[_VS], state[_IC], state[_IS]
    n = start
    while n < voltage.shape[0]:
        difference = voltage[n] - (dc_v >> dc_shift)
        dc_v += difference
        v_ac = _saturate(difference, sample_min, sample_max)
        difference = current[n] - (dc_i >> dc_shift)
        dc_i += difference
        i_ac = _saturate(difference, sample_min, sample_max)

        i_compensated = _saturate(
            i_previous + ((coefficient * (i_ac - i_compensated)) >> coefficient_fraction),
            sample_min, sample_max)
        power = v_delayed * i_compensated
        sum_p += power
        sum_pf += power
        energy = fraction + power if running else fraction
        if energy >= quantum:
            fraction = energy - quantum
            imported += 1
        elif energy <= -quantum:
            fraction = energy + quantum
            exported += 1
        else:
            fraction = energy
        sum_v += v_delayed * v_delayed
        sum_i += i_compensated * i_compensated

        if count + 1 >= window:
            windows[published[0], 0] = sum_p
            windows[published[0], 1] = sum_v
            windows[published[0], 2] = sum_i
            windows[published[0], 3] = n
            published[0] += 1
            running = 1 if abs(sum_p) >= threshold else 0
            sum_p, sum_v, sum_i, count = 0, 0, 0, 0
        else:
            count += 1

        index = theta >> index_shift
        theta = (theta + nco_step) & nco_mask
        vc += v_delayed * cos[index]
        vs += v_delayed * sin[index]
        ic += i_compensated * cos[index]
        is_ += i_compensated * sin[index]
        v_delayed, i_previous = v_ac, i_ac
        fundamental_count += 1
        n += 1
        if fundamental_count == fundamental_window:
            break  # the caller ends the window, then counts this set's reactive quantum
        _count_reactive_quantum(state, quantum)

    state[_DC_V], state[_DC_I] = dc_v, dc_i
    state[_V_DELAYED], state[_I_PREVIOUS], state[_I_COMPENSATED] = v_delayed, i_previous, i_compensated
    state[_SUM_P], state[_SUM_V], state[_SUM_I], state[_COUNT] = sum_p, sum_v, sum_i, count
    state[_FRACTION], state[_IMPORT], state[_EXPORT], state[_RUNNING] = fraction, imported, exported, running
    state[_THETA], state[_SUM_PF], state[_FUNDAMENTAL_COUNT] = theta, sum_pf, fundamental_count
    state[_VC], state[_VS], state[_IC], state[_IS] = vc, vs, ic, is_
    return n


@dataclass
class PhaseModel:
    """One phase's metrology state, advanced by :meth:`run` over blocks of samples.

    ``nco_step`` is the gateware input of that name (the line frequency); it may be
    changed between runs. After each run, :attr:`reactive_windows` holds the
    fundamental windows it completed: ``q`` and the index of the sample that ended it.
    """

    calibration: PhaseCalibration
    fundamental_window_log2: int = spec.FUNDAMENTAL_WINDOW_LOG2
    nco_step: int = spec.nco_step(50)
    reactive_windows: list[tuple[int, int]] = field(init=False, default_factory=list)
    _state: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.fundamental_window_log2 <= spec.MAX_FUNDAMENTAL_WINDOW_LOG2:
            raise ValueError(f"fundamental_window_log2 must be 1 to "
                             f"{spec.MAX_FUNDAMENTAL_WINDOW_LOG2}, not {self.fundamental_window_log2}")
        self._state = np.zeros(_STATE_SIZE, dtype=np.int64)
        self._state[_RUNNING] = 1
        self._state[_IMPORTING] = 1

    def run(self, voltage: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Feed sample sets (ADC codes); return the windows completed, one row each:
        ``active, voltage_squared, current_squared, index of the sample that ended it``."""
        voltage = np.ascontiguousarray(voltage, dtype=np.int64)
        current = np.ascontiguousarray(current, dtype=np.int64)
        if voltage.shape != current.shape:
            raise ValueError(f"{voltage.shape[0]} voltage samples but {current.shape[0]} current samples")
        limit = 1 << (spec.SAMPLE_WIDTH - 1)
        if voltage.size and (min(voltage.min(), current.min()) < -limit
                             or max(voltage.max(), current.max()) >= limit):
            raise ValueError("ADC codes must be signed 24-bit")
        calibration = self.calibration
        if not 0 <= self.nco_step < 1 << spec.NCO_WIDTH:
            raise ValueError(f"nco_step {self.nco_step} does not fit {spec.NCO_WIDTH} bits")
        windows = np.zeros((voltage.shape[0] // max(calibration.window_samples, 1) + 2, 4), dtype=np.int64)
        published = np.zeros(1, dtype=np.int64)
        self.reactive_windows = []
        start = 0
        while start < voltage.shape[0]:
            start = _run(voltage, current, start, calibration.phase_coefficient,
                         calibration.energy_quantum, calibration.noload_threshold,
                         calibration.window_samples, 1 << self.fundamental_window_log2,
                         self.nco_step, _CONSTANTS, _COS, _SIN, self._state, windows, published)
            if self._state[_FUNDAMENTAL_COUNT] == 1 << self.fundamental_window_log2:
                self._end_fundamental_window(start - 1)
        return windows[:published[0]]

    def _end_fundamental_window(self, index: int) -> None:
        state = self._state
        vc, vs, ic, is_ = (int(state[k]) for k in (_VC, _VS, _IC, _IS))
        q = ((vc >> 32) * is_ - (vs >> 32) * ic) >> (self.fundamental_window_log2 - 1)
        if abs(q) >= self.calibration.noload_threshold:
            state[_REACTIVE] += q
        state[_IMPORTING] = int(state[_SUM_PF] >= 0)
        for k in (_VC, _VS, _IC, _IS, _SUM_PF, _FUNDAMENTAL_COUNT):
            state[k] = 0
        _count_reactive_quantum(state, self.calibration.energy_quantum)
        self.reactive_windows.append((q, index))

    @property
    def import_quanta(self) -> int:
        return int(self._state[_IMPORT]) % (1 << spec.COUNTER_WIDTH)

    @property
    def export_quanta(self) -> int:
        return int(self._state[_EXPORT]) % (1 << spec.COUNTER_WIDTH)

    @property
    def energy_fraction(self) -> int:
        return int(self._state[_FRACTION])

    @property
    def reactive_quanta(self) -> tuple[int, int, int, int]:
        """Reactive quanta counted in quadrants I to IV (wrapping like the gateware's)."""
        return tuple(int(self._state[k]) % (1 << spec.COUNTER_WIDTH)
                     for k in (_QUADRANT_1, _QUADRANT_2, _QUADRANT_3, _QUADRANT_4))

    @property
    def reactive_fraction(self) -> int:
        return int(self._state[_REACTIVE])

    @property
    def net_energy(self) -> int:
        """Import minus export, raw units, with nothing lost to quantisation."""
        quantum = self.calibration.energy_quantum
        return (int(self._state[_IMPORT]) - int(self._state[_EXPORT])) * quantum + self.energy_fraction

    @property
    def net_reactive_energy(self) -> int:
        """+R minus -R, raw units, with nothing lost to quantisation."""
        positive = self._state[_QUADRANT_1] + self._state[_QUADRANT_2]
        negative = self._state[_QUADRANT_3] + self._state[_QUADRANT_4]
        return int(positive - negative) * self.calibration.energy_quantum + self.reactive_fraction
