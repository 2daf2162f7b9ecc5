"""Accuracy of the metrology, through the bit-exact model: calibration and test points.

A :class:`MeterUnderTest` is a front end (with its gain, offset and skew errors)
plus the model of the phase metrology. :meth:`MeterUnderTest.calibrate` does what
a factory one-point calibration does: it measures the energy at the reference
current with PF 1 (gain) and PF 0.5 (phase) against the analytic reference, and
sets the energy quantum and phase coefficient, then the voltage and current
scales. :meth:`MeterUnderTest.measure`
then measures any load over consecutive intervals (whole fundamental windows, so
that the reactive energy of each is complete), after letting DC removal settle;
:meth:`MeterUnderTest.measure_frequency` takes the line monitor's first measurement
of the line frequency.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from refmeter.gateware.metrology import line, spec

from .analog import FrontEnd, Load, reference_energy, reference_reactive_power
from .line import LineModel
from .metrology import PhaseCalibration, PhaseModel

__all__ = ["MeterUnderTest", "Reading", "JOULES_PER_WH", "nominal_calibration"]

JOULES_PER_WH = spec.JOULES_PER_WH

#: Sample sets before measuring: DC removal settles to e**-10 (a whole number of
#: fundamental windows).
SETTLE_SAMPLES = 10 << spec.DC_SHIFT
#: Sample sets per fundamental window.
FUNDAMENTAL_WINDOW = 1 << spec.FUNDAMENTAL_WINDOW_LOG2
#: Samples generated at a time.
CHUNK = 1 << 20


def nominal_calibration(front_end: FrontEnd) -> PhaseCalibration:
    """The calibration a front end would need if it had no gain or phase errors."""
    return PhaseCalibration(energy_quantum=round(
        JOULES_PER_WH * front_end.sample_rate_hz * spec.SAMPLE_MAX ** 2
        / (front_end.voltage_full_scale * front_end.current_full_scale)))


@dataclass(frozen=True)
class Reading:
    """What the meter registered over one interval and what it should have: energy
    in J (reactive: var s), RMS (the mean of the interval's windows) in V and A."""

    active: float
    active_reference: float
    reactive: float
    reactive_reference: float
    voltage_rms: float
    current_rms: float
    load: Load

    @property
    def voltage_rms_error(self) -> float:
        return self.voltage_rms / self.load.true_rms[0] - 1

    @property
    def current_rms_error(self) -> float:
        return self.current_rms / self.load.true_rms[1] - 1

    @property
    def active_error(self) -> float:
        return self.active / self.active_reference - 1

    @property
    def reactive_error(self) -> float:
        return self.reactive / self.reactive_reference - 1


@dataclass
class MeterUnderTest:
    front_end: FrontEnd
    calibration: PhaseCalibration
    #: V and A per code (the gateware's voltage_scale and current_scale registers).
    voltage_scale: float = spec.VOLTAGE_FULL_SCALE_V / spec.SAMPLE_MAX
    current_scale: float = spec.CURRENT_FULL_SCALE_A / spec.SAMPLE_MAX
    #: No-load threshold, W: above the 3 mW of a 1 s window of 101 dB ADC noise at
    #: Un, below the 0.575 W of 0.001 In at PF 0.25.
    noload_watts: float = 0.25

    @property
    def sample_rate(self) -> float:
        return self.front_end.sample_rate_hz

    def _model(self, load: Load) -> PhaseModel:
        calibration = self.calibration
        watts_per_raw_window = (JOULES_PER_WH / calibration.energy_quantum
                                * self.sample_rate / max(calibration.window_samples, 1))
        threshold = min(round(self.noload_watts / watts_per_raw_window), (1 << spec.QUANTUM_WIDTH) - 1)
        # The line monitor's measurement of the frequency, against the sample clock.
        return PhaseModel(replace(calibration, noload_threshold=threshold),
                          nco_step=spec.nco_step(load.frequency_hz, self.sample_rate))

    def measure(self, load: Load, *, interval_s: float, intervals: int,
                rng: np.random.Generator) -> list[Reading]:
        """The readings of consecutive intervals of one run, each ``interval_s``
        rounded to whole fundamental windows."""
        model = self._model(load)
        sample_period = 1 / self.sample_rate
        time_s = rng.uniform(0, 1 / load.frequency_hz)  # random start phase
        model.run(*self.front_end.sample(load, SETTLE_SAMPLES, rng, time_s))
        time_s += SETTLE_SAMPLES * sample_period
        count = max(1, round(interval_s * self.sample_rate / FUNDAMENTAL_WINDOW)) * FUNDAMENTAL_WINDOW
        joules_per_raw = JOULES_PER_WH / self.calibration.energy_quantum
        window = max(self.calibration.window_samples, 1)
        readings = []
        for _ in range(intervals):
            active, reactive = model.net_energy, model.net_reactive_energy
            windows = np.concatenate([  # bounded memory for long intervals
                model.run(*self.front_end.sample(load, min(CHUNK, count - offset), rng,
                                                 time_s + offset * sample_period))
                for offset in range(0, count, CHUNK)])
            squares = windows[:, 1:3].mean(axis=0) / window
            readings.append(Reading(
                active=(model.net_energy - active) * joules_per_raw,
                # The voltage and current reach the product one sample late.
                active_reference=reference_energy(load, time_s - sample_period, count * sample_period),
                reactive=(model.net_reactive_energy - reactive) * joules_per_raw,
                reactive_reference=reference_reactive_power(load) * count * sample_period,
                voltage_rms=self.voltage_scale * math.sqrt(squares[0]),
                current_rms=self.current_scale * math.sqrt(squares[1]),
                load=load))
            time_s += count * sample_period
        return readings

    def measure_frequency(self, load: Load, rng: np.random.Generator) -> float:
        """The line frequency, Hz, from the line monitor's first measurement (64
        cycles from the first rising crossing after a random start phase), divided by
        the ADC's real sample rate: the measurement's own error, without the crystal's
        (which a host dividing by the nominal rate would add)."""
        # The first crossing comes within a cycle, the measurement 64 cycles after it.
        count = round(((1 << line.MEASUREMENT_CYCLES_LOG2) + 2) / load.frequency_hz * self.sample_rate)
        voltage, _ = self.front_end.sample(load, count, rng, rng.uniform(0, 1 / load.frequency_hz))
        measurements = LineModel(declared=0).run(voltage).measurements
        if len(measurements) == 0:
            raise RuntimeError(f"No frequency measurement of {load} in {count} samples")
        return (1 << line.PERIOD_FRACTION) / int(measurements[0, 1]) * self.sample_rate

    def energy_error(self, load: Load, *, interval_s: float, intervals: int,
                     rng: np.random.Generator) -> np.ndarray:
        """Relative error of each interval's active energy."""
        return np.array([reading.active_error for reading
                         in self.measure(load, interval_s=interval_s, intervals=intervals, rng=rng)])

    def calibrate(self, reference_load: Load, rng: np.random.Generator, *,
                  interval_s: float = 10.0) -> None:
        """One-point calibration at ``reference_load``'s voltage and current: phase
        from PF 0.5 lagging against PF 1 (a ratio the gain error cancels from), then
        gain at PF 1."""
        unity = replace(reference_load, phase_deg=0.0)
        self._calibrate_phase(unity, replace(reference_load, phase_deg=60.0), rng, interval_s)
        self._calibrate_gain(unity, rng, interval_s)
        reading, = self.measure(unity, interval_s=interval_s, intervals=1, rng=rng)
        self.voltage_scale /= 1 + reading.voltage_rms_error
        self.current_scale /= 1 + reading.current_rms_error

    def _ratio(self, load: Load, rng: np.random.Generator, interval_s: float) -> float:
        reading, = self.measure(load, interval_s=interval_s, intervals=1, rng=rng)
        return reading.active / reading.active_reference

    def _calibrate_gain(self, load: Load, rng: np.random.Generator, interval_s: float) -> None:
        """The quantum becomes the raw energy of one Wh."""
        quantum = round(self.calibration.energy_quantum * self._ratio(load, rng, interval_s))
        self.calibration = replace(self.calibration, energy_quantum=quantum)

    def _calibrate_phase(self, unity: Load, lagging: Load, rng: np.random.Generator,
                         interval_s: float) -> None:
        """A reading at PF 0.5 lagging that is e higher, relative to PF 1, than it
        should be means a phase error of e / tan(60 deg); the all-pass delay that
        removes it follows from the skew it means."""
        omega = 2 * math.pi * lagging.frequency_hz / self.sample_rate
        scale = 1 << spec.PHASE_COEFFICIENT_FRACTION
        for _ in range(2):
            relative = self._ratio(lagging, rng, interval_s) / self._ratio(unity, rng, interval_s)
            phase_error = (relative - 1) / math.tan(math.radians(lagging.phase_deg))
            coefficient = self.calibration.phase_coefficient / scale
            delay = (1 - coefficient) / (1 + coefficient) + phase_error / omega
            self.calibration = replace(self.calibration,
                                       phase_coefficient=round((1 - delay) / (1 + delay) * scale))
