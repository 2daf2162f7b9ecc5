"""Bit-exact model of :class:`~refmeter.gateware.metrology.line.LineMonitor`.

It implements the arithmetic stated in :mod:`refmeter.gateware.metrology.line` on
64-bit integers, compiled by numba, so a frequency benchmark of minutes of line
voltage at many frequencies and seeds takes seconds. ``tests/test_line.py`` proves
it equal to the gateware on random stimuli.
"""

from dataclasses import dataclass, field

import numba
import numpy as np

from refmeter.gateware.metrology import line, spec

__all__ = ["LineModel", "LineRun"]

# Indices into the state vector shared with the compiled kernel.
(_X_PREVIOUS, _ARMED_RISE, _ARMED_FALL, _SUM_PREVIOUS, _SUM_CURRENT, _COUNT_CURRENT,
 _MEASURING, _CYCLES, _FIRST_CROSSING, _SAMPLE, _PERIOD, _NCO_STEP,
 _MEASUREMENTS, _VALID, _HALF_CYCLE_MS, _SAG, _SWELL, _INTERRUPTION, _EXTREME, _HALF_CYCLES,
 _STATE_SIZE) = range(21)

#: The gateware's constants, handed to the compiled kernel as an argument: numba would
#: freeze module constants into its cached code, which a change to the gateware's
#: module (another file) would not invalidate.
_CONSTANTS = np.array([line.SAMPLE_SHIFT, line.MAGNITUDE_WIDTH, line.HYSTERESIS, line.BLANKING,
                       line.HALF_CYCLE_MAX, line.MEASUREMENT_CYCLES_LOG2, line.INTERPOLATION_BITS,
                       line.PERIOD_FRACTION, line.EventKind.SAG.value, line.EventKind.SWELL.value,
                       line.EventKind.INTERRUPTION.value], dtype=np.int64)


@numba.njit(cache=True)
def _edge(events, count, index, kind, end, value):
    events[count, 0] = index
    events[count, 1] = kind
    events[count, 2] = end
    events[count, 3] = value
    return count + 1


@numba.njit(cache=True)
def _run(voltage, declared, levels, constants, state, measurements, half_cycles, events):
    sag_start, sag_end, swell_start, swell_end, interruption_start, interruption_end = (
        levels[0], levels[1], levels[2], levels[3], levels[4], levels[5])
    (sample_shift, magnitude_width, hysteresis, blanking_samples, half_cycle_max,
     cycles_log2, interpolation_bits, period_fraction, sag_kind, swell_kind,
     interruption_kind) = (
        constants[0], constants[1], constants[2], constants[3], constants[4], constants[5],
        constants[6], constants[7], constants[8], constants[9], constants[10])
    x_previous, armed_rise, armed_fall = state[_X_PREVIOUS], state[_ARMED_RISE], state[_ARMED_FALL]
    sum_previous = state[_SUM_PREVIOUS]
    sum_current, count_current = state[_SUM_CURRENT], state[_COUNT_CURRENT]
    measuring, cycles, first = state[_MEASURING], state[_CYCLES], state[_FIRST_CROSSING]
    sample, period, nco_step = state[_SAMPLE], state[_PERIOD], state[_NCO_STEP]
    published, valid, half_cycle_ms = state[_MEASUREMENTS], state[_VALID], state[_HALF_CYCLE_MS]
    sag, swell, interruption, extreme = state[_SAG], state[_SWELL], state[_INTERRUPTION], state[_EXTREME]
    ended = state[_HALF_CYCLES]
    cycles_per_measurement = 1 << cycles_log2
    n_measurements, n_half_cycles, n_events = 0, 0, 0
    for index in range(voltage.shape[0]):
        x = voltage[index] >> sample_shift
        magnitude = (x ^ (x >> 15)) >> (16 - magnitude_width)
        m = 2 * (magnitude & ((1 << (magnitude_width - 1)) - 1)) + 1

        blanking = count_current < blanking_samples
        rising = armed_rise == 1 and x_previous < 0 <= x and not blanking
        falling = armed_fall == 1 and x < 0 <= x_previous and not blanking
        timeout = count_current == half_cycle_max and not (rising or falling)
        if rising or falling or timeout:
            mean_square = min(((sum_previous + sum_current) << 24) // period, (1 << 32) - 1)
            half_cycle_ms = mean_square >> 16
            half_cycles[n_half_cycles, 0] = index
            half_cycles[n_half_cycles, 1] = half_cycle_ms
            n_half_cycles += 1
            if declared != 0 and ended == 2:
                ratio = mean_square // declared
                new_sag = ratio < sag_end if sag else ratio < sag_start
                new_swell = ratio > swell_end if swell else ratio > swell_start
                new_interruption = (ratio < interruption_end if interruption
                                    else ratio < interruption_start)
                # The extreme of an event in progress, this half-cycle included.
                if sag and half_cycle_ms < extreme or swell and half_cycle_ms > extreme:
                    extreme = half_cycle_ms
                # Ends first, inner before outer; then starts, outer before inner,
                # with the extreme restarted for a new sag or swell.
                for kind, old, new in ((interruption_kind, interruption, new_interruption),
                                       (sag_kind, sag, new_sag), (swell_kind, swell, new_swell)):
                    if old and not new:
                        n_events = _edge(events, n_events, index, kind, 1, extreme)
                if new_sag and not sag or new_swell and not swell:
                    extreme = half_cycle_ms
                for kind, old, new in ((sag_kind, sag, new_sag), (swell_kind, swell, new_swell),
                                       (interruption_kind, interruption, new_interruption)):
                    if new and not old:
                        n_events = _edge(events, n_events, index, kind, 0, extreme)
                sag, swell, interruption = int(new_sag), int(new_swell), int(new_interruption)
            sum_previous, sum_current, count_current = sum_current, 0, 0
            ended = min(ended + 1, 2)
        sum_current += m * m
        count_current += 1

        if rising:
            crossing = sample * (1 << interpolation_bits) - (
                (x << interpolation_bits) // (x - x_previous))
            if measuring:
                cycles += 1
                if cycles == cycles_per_measurement:
                    period = crossing - first
                    nco_step = (1 << (32 + period_fraction)) // period
                    published += 1
                    valid = 1
                    measurements[n_measurements, 0] = index
                    measurements[n_measurements, 1] = period
                    measurements[n_measurements, 2] = nco_step
                    n_measurements += 1
                    cycles, first = 0, crossing
            else:
                measuring, cycles, first = 1, 0, crossing
        if timeout:
            measuring, valid = 0, 0

        if x < -hysteresis and not blanking:
            armed_rise = 1
        elif rising:
            armed_rise = 0
        if x >= hysteresis and not blanking:
            armed_fall = 1
        elif falling:
            armed_fall = 0
        x_previous = x
        sample += 1

    state[_X_PREVIOUS], state[_ARMED_RISE], state[_ARMED_FALL] = x_previous, armed_rise, armed_fall
    state[_SUM_PREVIOUS] = sum_previous
    state[_SUM_CURRENT], state[_COUNT_CURRENT] = sum_current, count_current
    state[_MEASURING], state[_CYCLES], state[_FIRST_CROSSING] = measuring, cycles, first
    state[_SAMPLE], state[_PERIOD], state[_NCO_STEP] = sample, period, nco_step
    state[_MEASUREMENTS], state[_VALID], state[_HALF_CYCLE_MS] = published, valid, half_cycle_ms
    state[_SAG], state[_SWELL], state[_INTERRUPTION], state[_EXTREME] = sag, swell, interruption, extreme
    state[_HALF_CYCLES] = ended
    return n_measurements, n_half_cycles, n_events


@dataclass(frozen=True)
class LineRun:
    """What one :meth:`LineModel.run` published, each row tagged with the index (in
    that run's samples) of the sample that decided it."""

    #: ``index, period (UQ8.16 samples), nco_step`` per measurement published.
    measurements: np.ndarray
    #: ``index, half_cycle_ms (2**30 codes²)`` per half-cycle that ended.
    half_cycles: np.ndarray
    #: ``index, kind (EventKind), end (0: start, 1: end), value`` per event edge, in
    #: the order the monitor emits them; the value is the event's extreme
    #: ``half_cycle_ms`` so far.
    events: np.ndarray


@dataclass
class LineModel:
    """One phase's :class:`LineMonitor` state, advanced by :meth:`run` over blocks of
    voltage samples (ADC codes, signed 24-bit)."""

    #: Declared voltage Udin squared, 2**30 codes² (``declared_voltage_squared_l1``);
    #: 0: no events.
    declared: int
    levels: line.EventLevels = line.DEFAULT_LEVELS
    nominal_frequency_hz: float = 50.0
    _state: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.declared < 1 << line.HALF_CYCLE_MS_WIDTH:
            raise ValueError(f"Declared voltage² {self.declared} does not fit "
                             f"{line.HALF_CYCLE_MS_WIDTH} bits")
        self._state = np.zeros(_STATE_SIZE, dtype=np.int64)
        self._state[_PERIOD] = line.nominal_period(self.nominal_frequency_hz)
        self._state[_NCO_STEP] = spec.nco_step(self.nominal_frequency_hz)

    def run(self, voltage: np.ndarray) -> LineRun:
        voltage = np.ascontiguousarray(voltage, dtype=np.int64)
        limit = 1 << (spec.SAMPLE_WIDTH - 1)
        if voltage.size and (voltage.min() < -limit or voltage.max() >= limit):
            raise ValueError("Voltage codes must be signed 24-bit")
        count = voltage.shape[0]
        measurements = np.zeros((count // 2 + 1, 3), dtype=np.int64)
        half_cycles = np.zeros((count + 1, 2), dtype=np.int64)
        events = np.zeros((3 * count + 3, 4), dtype=np.int64)
        thresholds = self.levels.thresholds
        levels = np.array([thresholds[name] for name in (
            "sag_start", "sag_end", "swell_start", "swell_end", "interruption_start",
            "interruption_end")], dtype=np.int64)
        n_measurements, n_half_cycles, n_events = _run(
            voltage, self.declared, levels, _CONSTANTS, self._state, measurements, half_cycles,
            events)
        return LineRun(measurements[:n_measurements], half_cycles[:n_half_cycles],
                       events[:n_events])

    @property
    def period(self) -> int:
        """The last period published (UQ8.16 samples per cycle), nominal until then."""
        return int(self._state[_PERIOD])

    @property
    def nco_step(self) -> int:
        return int(self._state[_NCO_STEP])

    @property
    def measurements(self) -> int:
        """Measurements published since reset (the register wraps it)."""
        return int(self._state[_MEASUREMENTS])

    @property
    def valid(self) -> bool:
        return bool(self._state[_VALID])

    @property
    def half_cycle_ms(self) -> int:
        return int(self._state[_HALF_CYCLE_MS])

    @property
    def active(self) -> dict[line.EventKind, bool]:
        """The events in progress."""
        return {line.EventKind.SAG: bool(self._state[_SAG]),
                line.EventKind.SWELL: bool(self._state[_SWELL]),
                line.EventKind.INTERRUPTION: bool(self._state[_INTERRUPTION])}
