"""Bit-exact model of :class:`~refmeter.gateware.metrology.phase.PhaseMetrology`.

It implements :mod:`refmeter.gateware.metrology.spec` on 64-bit integers,
compiled by numba, so accuracy runs of millions of samples take seconds instead
of the hours an RTL simulation would. ``tests/test_metrology.py`` proves it
equal to the gateware on random stimuli.
"""

from dataclasses import dataclass, field

import numba
import numpy as np

from refmeter.gateware.metrology import spec

__all__ = ["PhaseCalibration", "PhaseModel"]

# Indices into the state vector shared with the compiled kernel.
(_DC_V, _DC_I, _V_DELAYED, _I_PREVIOUS, _I_COMPENSATED, _SUM_P, _SUM_V, _SUM_I, _COUNT,
 _FRACTION, _IMPORT, _EXPORT, _RUNNING, _STATE_SIZE) = range(14)


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
def _saturate(value):
    return max(spec.SAMPLE_MIN, min(spec.SAMPLE_MAX, value))


@numba.njit(cache=True)
def _run(voltage, current, coefficient, quantum, threshold, window, state, windows):
    dc_v, dc_i = state[_DC_V], state[_DC_I]
    v_delayed, i_previous, i_compensated = state[_V_DELAYED], state[_I_PREVIOUS], state[_I_COMPENSATED]
    sum_p, sum_v, sum_i, count = state[_SUM_P], state[_SUM_V], state[_SUM_I], state[_COUNT]
    fraction, imported, exported, running = state[_FRACTION], state[_IMPORT], state[_EXPORT], state[_RUNNING]
    published = 0
    for n in range(voltage.shape[0]):
        difference = voltage[n] - (dc_v >> spec.DC_SHIFT)
        dc_v += difference
        v_ac = _saturate(difference)
        difference = current[n] - (dc_i >> spec.DC_SHIFT)
        dc_i += difference
        i_ac = _saturate(difference)

        i_compensated = _saturate(
            i_previous + ((coefficient * (i_ac - i_compensated)) >> spec.PHASE_COEFFICIENT_FRACTION))
        power = v_delayed * i_compensated
        sum_p += power
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
        v_delayed, i_previous = v_ac, i_ac

        if count + 1 >= window:
            windows[published, 0] = sum_p
            windows[published, 1] = sum_v
            windows[published, 2] = sum_i
            windows[published, 3] = n
            published += 1
            running = 1 if abs(sum_p) >= threshold else 0
            sum_p, sum_v, sum_i, count = 0, 0, 0, 0
        else:
            count += 1

    state[_DC_V], state[_DC_I] = dc_v, dc_i
    state[_V_DELAYED], state[_I_PREVIOUS], state[_I_COMPENSATED] = v_delayed, i_previous, i_compensated
    state[_SUM_P], state[_SUM_V], state[_SUM_I], state[_COUNT] = sum_p, sum_v, sum_i, count
    state[_FRACTION], state[_IMPORT], state[_EXPORT], state[_RUNNING] = fraction, imported, exported, running
    return published


@dataclass
class PhaseModel:
    """One phase's metrology state, advanced by :meth:`run` over blocks of samples."""

    calibration: PhaseCalibration
    _state: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._state = np.zeros(_STATE_SIZE, dtype=np.int64)
        self._state[_RUNNING] = 1

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
        windows = np.zeros((voltage.shape[0] // max(calibration.window_samples, 1) + 2, 4), dtype=np.int64)
        published = _run(voltage, current, calibration.phase_coefficient,
                         calibration.energy_quantum, calibration.noload_threshold,
                         calibration.window_samples, self._state, windows)
        return windows[:published]

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
    def net_energy(self) -> int:
        """Import minus export, raw units, with nothing lost to quantisation."""
        quantum = self.calibration.energy_quantum
        return (int(self._state[_IMPORT]) - int(self._state[_EXPORT])) * quantum + self.energy_fraction
