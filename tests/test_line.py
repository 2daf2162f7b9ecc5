# amaranth: UnusedElaboratable=no
"""Line frequency, Urms(1/2) and voltage events: the model against analytic
references, the gateware against the model, and the event log.

References are independent of the code under test: frequencies and RMS values come
from the definition of the simulated line voltage (``sim/analog.py``: a load's
frequency and RMS, the front end's real sample rate and scale), event levels from
their percentages of the declared voltage, record contents from what the test fed
the log. The gateware is checked against the bit-exact model sample by sample: every
published value after every sample, and every event edge.
"""

import math
import random

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from refmeter.gateware.hostlink.protocol import Status
from refmeter.gateware.metrology import spec
from refmeter.gateware.metrology.events import EventLog
from refmeter.gateware.metrology.line import (HALF_CYCLE_MAX, MAX_CYCLES_PER_SAMPLE,
                                              EventKind, EventLevels, LineMonitor,
                                              line_registers, nominal_period)
from refmeter.gateware.registers import (RegisterBank, RegisterBus, RegisterMap,
                                         connect_registers)
from refmeter.sim.analog import FrontEnd, Harmonic, Load
from refmeter.sim.line import LineModel

from gateware_helpers import run_simulation, ticks

#: The nominal front end (400 V peak at full scale), with the 101 dB ADC's noise and a
#: sample clock 23 ppm fast, not locked to the line; no offset or gain error, so a
#: voltage's codes follow from its definition alone.
FRONT_END = FrontEnd()
UN = 230.0
#: Udin² for 230 V in the unit of Urms(1/2)² (2**30 codes²), from the front end's scale.
DECLARED = round((UN * spec.SAMPLE_MAX / spec.VOLTAGE_FULL_SCALE_V) ** 2 / 2 ** 30)
#: 10 % THD: 8 % 5th, 5 % 7th, 3 % 11th, at phases that skew the waveform.
THD_10 = (Harmonic(5, 0.08, 30.0), Harmonic(7, 0.05, -70.0), Harmonic(11, 0.03, 150.0))
SAMPLE_RATE = FRONT_END.sample_rate_hz
SAG, SWELL, INTERRUPTION = EventKind.SAG.value, EventKind.SWELL.value, EventKind.INTERRUPTION.value
START, END = 0, 1
#: Steady Un first, so the line frequency has been measured (at least 64 cycles)
#: before anything happens: until then Urms(1/2) assumes the nominal frequency.
SETTLE = (1.5, UN)


def mean_square(volts: float, harmonics=()) -> float:
    """Urms(1/2)² of a steady voltage, in its unit of 2**30 codes²."""
    power = 1 + sum(h.fraction ** 2 for h in harmonics)
    return (volts * spec.SAMPLE_MAX / spec.VOLTAGE_FULL_SCALE_V) ** 2 * power / 2 ** 30


def line_voltage(segments, *, frequency_hz=50.0, harmonics=(), seed=0) -> np.ndarray:
    """ADC codes of a line voltage through :data:`FRONT_END`: ``segments`` of
    (seconds, RMS volts of the fundamental), one after the other without a break in
    the waveform's phase, from a random start phase."""
    rng = np.random.default_rng(seed)
    time_s = rng.uniform(0, 1 / frequency_hz)
    parts = []
    for seconds, volts in segments:
        count = round(seconds * SAMPLE_RATE)
        load = Load(volts, 0.0, frequency_hz=frequency_hz, voltage_harmonics=harmonics)
        parts.append(FRONT_END.sample(load, count, rng, time_s)[0])
        time_s += count / SAMPLE_RATE
    return np.concatenate(parts)


def sample_at(segments, index: int) -> float:
    """The time in seconds of the sample where segment ``index`` begins."""
    return sum(round(seconds * SAMPLE_RATE) for seconds, _ in segments[:index]) / SAMPLE_RATE


def frequency_hz(period: int) -> float:
    """The frequency a period register (UQ8.16 samples) stands for, at the ADC's real rate."""
    return SAMPLE_RATE * (1 << 16) / period


def edges(run) -> list[tuple[int, int]]:
    """(kind, end) of each event edge of a model run, in order."""
    return [(int(kind), int(end)) for _, kind, end, _ in run.events]


# --- Frequency, through the model --------------------------------------------------------

@pytest.mark.parametrize("harmonics", [(), THD_10], ids=["sine", "10% THD"])
@pytest.mark.parametrize("frequency", [45.0, 47.5, 50.0, 53.3, 57.5, 60.0, 62.5, 65.0])
def test_frequency_within_1_mhz(frequency, harmonics):
    """Every measurement is within 1 mHz of the line's frequency (the sample clock is
    not locked to it), and nco_step is 2**32 cycles per sample, to the same accuracy."""
    model = LineModel(declared=DECLARED)
    run = model.run(line_voltage([(4.5, UN)], frequency_hz=frequency, harmonics=harmonics,
                                 seed=int(frequency * 10)))
    assert len(run.measurements) >= 3  # 64 cycles each, the first from the first crossing
    for _, period, nco_step in run.measurements:
        assert abs(frequency_hz(period) - frequency) < 1e-3
        assert abs(nco_step - 2 ** 32 * frequency / SAMPLE_RATE) < 2 ** 32 * 1e-3 / SAMPLE_RATE
    assert model.valid
    # 64 whole cycles per measurement, back to back: 64 periods of samples apart.
    indices = run.measurements[:, 0]
    assert np.all(np.abs(np.diff(indices) - 64 * SAMPLE_RATE / frequency) <= 1)


def test_measurements_with_noise_near_zero_at_low_voltage():
    """At 2 % of Un (the hysteresis is about 0.4 % of it) noise and a 10 % 13th harmonic
    that wiggles near zero still give one crossing per cycle."""
    model = LineModel(declared=DECLARED)
    run = model.run(line_voltage([(2.0, 0.02 * UN)], frequency_hz=50.0,
                                 harmonics=(Harmonic(13, 0.10, 90.0),), seed=3))
    assert len(run.measurements) >= 1
    for _, period, _ in run.measurements:
        assert abs(frequency_hz(period) - 50.0) < 1e-3


def test_waveform_crossing_zero_three_times_gives_one_crossing():
    """10 % THD whose harmonics add up near a zero (21 % of the fundamental there) make
    the waveform itself cross zero three times within a few samples: the blanking after
    each half-cycle's end takes the first, so half-cycles stay whole and the frequency
    right."""
    harmonics = (Harmonic(3, 0.05, -25.8), Harmonic(5, 0.06, -160.1), Harmonic(7, 0.05, 18.8),
                 Harmonic(11, 0.03, -14.2), Harmonic(13, 0.02, 165.5))
    load = Load(UN, 0.0, frequency_hz=64.0, voltage_harmonics=harmonics)
    voltage = FRONT_END.sample(load, 20_000, np.random.default_rng(12))[0]
    codes = voltage.astype(float)
    zero_crossings = np.count_nonzero(np.sign(codes[1:]) != np.sign(codes[:-1]))
    assert zero_crossings > 3 * 2 * 64 * 20_000 / SAMPLE_RATE / 64  # three at one of two zeros
    run = LineModel(declared=DECLARED).run(voltage)
    half_cycles = np.diff(run.half_cycles[3:, 0])
    assert np.all(np.abs(half_cycles - SAMPLE_RATE / 128) < 12), half_cycles
    for _, period, _ in run.measurements:
        assert abs(frequency_hz(period) - 64.0) < 1e-3


def test_crossing_hidden_by_blanking_is_skipped_not_taken_late():
    """At 35 Hz (half-cycles of 114 samples) starting 10 samples before a zero: that
    crossing comes in the blanking after reset, so the first half-cycle times out at
    120 samples, and the next crossing, at 124, falls in the blanking after that. It is
    skipped (by the time blanking ends the sample before is on the same side), not
    taken late; the next one counts, and the frequency is right."""
    count = 3 * 8000
    time_s = np.arange(count) / SAMPLE_RATE
    crossing_s = 10.5 / SAMPLE_RATE  # falling: sin(2 pi f (t - crossing) + pi)
    voltage = np.round(6e6 * np.sin(2 * np.pi * 35.0 * (time_s - crossing_s) + np.pi)).astype(int)
    run = LineModel(declared=DECLARED).run(voltage)
    assert run.half_cycles[0, 0] == HALF_CYCLE_MAX and run.half_cycles[1, 0] > 230
    assert len(run.measurements) >= 1
    for _, period, _ in run.measurements:
        assert abs(frequency_hz(period) - 35.0) < 1e-3


def test_no_voltage_is_invalid_with_nominal_frequency():
    """With no voltage (noise only), nothing is measured: not valid, the nominal
    period and 50 Hz's nco_step stay, and half-cycles are the fallback length."""
    model = LineModel(declared=DECLARED)
    run = model.run(line_voltage([(1.0, 0.0)]))
    assert len(run.measurements) == 0 and not model.valid and model.measurements == 0
    assert model.period == nominal_period(50.0) == 160 << 16
    assert model.nco_step == round(2 ** 32 * 50 / 8000)
    assert np.all(np.diff(run.half_cycles[:, 0]) == HALF_CYCLE_MAX)


def test_loss_of_voltage_clears_valid_and_measuring_resumes():
    """When the voltage goes, `valid` falls within the fallback half-cycle; when it
    comes back, a new measurement is published within 64 cycles and is right."""
    segments = [(2.0, UN), (0.5, 0.0), (2.0, UN)]
    voltage = line_voltage(segments, frequency_hz=55.0, seed=4)
    model = LineModel(declared=DECLARED)
    loss = round(sample_at(segments, 1) * SAMPLE_RATE)
    back = round(sample_at(segments, 2) * SAMPLE_RATE)
    model.run(voltage[:loss])
    assert model.valid
    run = model.run(voltage[loss:loss + HALF_CYCLE_MAX + 80])
    assert not model.valid and len(run.measurements) == 0
    model.run(voltage[loss + HALF_CYCLE_MAX + 80:back])
    assert not model.valid
    run = model.run(voltage[back:])
    first = run.measurements[0]
    assert first[0] < 66 * SAMPLE_RATE / 55.0  # the first crossing starts one at once
    assert abs(frequency_hz(first[1]) - 55.0) < 1e-3 and model.valid


# --- Urms(1/2) and events, through the model ---------------------------------------------

@pytest.mark.parametrize("volts, harmonics, tolerance", [
    (UN, (), 2e-4), (1.15 * UN, THD_10, 2e-4), (0.1 * UN, (), 2e-3)])
def test_half_cycle_rms_is_the_rms_of_one_cycle(volts, harmonics, tolerance):
    """Urms(1/2)² of a steady voltage is its mean square over a cycle, harmonics
    included (to 0.02 %, or 0.2 % at 10 % Un where the 12-bit magnitude is coarse),
    and a value comes every half-cycle."""
    segments = [(1.5, volts), (0.5, volts)]
    run = LineModel(declared=DECLARED).run(
        line_voltage(segments, frequency_hz=52.0, harmonics=harmonics))
    measured = run.half_cycles[run.half_cycles[:, 0] > sample_at(segments, 1) * SAMPLE_RATE]
    assert len(measured) > 45
    expected = mean_square(volts, harmonics)  # the register is this, rounded down
    assert np.all(np.abs(measured[:, 1] - expected) < tolerance * expected + 1)
    assert np.all(np.abs(np.diff(measured[:, 0]) - SAMPLE_RATE / 104) <= 3)


def test_half_cycle_rms_assumes_the_nominal_frequency_until_it_is_measured():
    """Before the first period is measured, a cycle's sum is divided by the nominal
    period: at 52 Hz on a 50 Hz meter, Urms(1/2)² reads 50/52 of its value."""
    run = LineModel(declared=DECLARED).run(line_voltage([(1.0, UN)], frequency_hz=52.0))
    early = run.half_cycles[3:100, 1]
    assert np.all(np.abs(early / (mean_square(UN) * 50 / 52) - 1) < 2e-4)


@pytest.mark.parametrize("kind, percent, inside", [
    (SAG, 89.8, True), (SAG, 90.2, False),
    (SWELL, 110.2, True), (SWELL, 109.8, False),
    (INTERRUPTION, 9.8, True), (INTERRUPTION, 10.2, False),
])
def test_events_start_just_beyond_their_level(kind, percent, inside):
    """A voltage 0.2 % of Udin beyond an event's level starts the event and ends it when
    the voltage comes back; 0.2 % short of it, nothing (but the sag that any
    interruption lies in)."""
    segments = [SETTLE, (0.3, percent / 100 * UN), (0.3, UN)]
    run = LineModel(declared=DECLARED).run(line_voltage(segments, frequency_hz=49.0, seed=5))
    expected = {SAG: [(SAG, START), (SAG, END)],
                SWELL: [(SWELL, START), (SWELL, END)],
                INTERRUPTION: [(SAG, START), (INTERRUPTION, START), (INTERRUPTION, END),
                               (SAG, END)]}[kind]
    if not inside:
        expected = [(SAG, START), (SAG, END)] if kind == INTERRUPTION else []
    assert edges(run) == expected


@pytest.mark.parametrize("kind, journey, ending", [
    (SAG, (85.0, 91.8, 92.2), 2),
    (SWELL, (115.0, 108.2, 107.8), 2),
    (INTERRUPTION, (5.0, 11.8, 12.2), 2),
])
def test_events_end_past_their_level_by_the_hysteresis(kind, journey, ending):
    """An event in progress ends only once the voltage is back past its level by the
    2 % hysteresis: at 0.2 % short of that it goes on, at 0.2 % beyond it ends."""
    segments = [SETTLE] + [(0.3, percent / 100 * UN) for percent in journey] + [(0.3, UN)]
    run = LineModel(declared=DECLARED).run(line_voltage(segments, frequency_hz=51.0, seed=6))
    ends = [index for index, event_kind, end, _ in run.events if event_kind == kind and end]
    assert len(ends) == 1
    begins, finishes = sample_at(segments, 1 + ending), sample_at(segments, 2 + ending)
    assert begins < ends[0] / SAMPLE_RATE < finishes


def test_event_times_durations_and_extremes():
    """A 100 ms sag to 60 % with a 40 ms interruption inside: each edge comes within
    one and a half cycles of its cause (at the latest, the first one-cycle window
    entirely after it ends a half-cycle later), durations follow, and the values are
    the extremes: the sag's and the interruption's lowest, and a start's own."""
    segments = [SETTLE, (0.03, 0.6 * UN), (0.04, 0.03 * UN), (0.03, 0.6 * UN), (0.3, UN)]
    run = LineModel(declared=DECLARED).run(line_voltage(segments, frequency_hz=50.0, seed=7))
    assert edges(run) == [(SAG, START), (INTERRUPTION, START), (INTERRUPTION, END), (SAG, END)]
    times = run.events[:, 0] / SAMPLE_RATE
    causes = [sample_at(segments, 1), sample_at(segments, 2), sample_at(segments, 3),
              sample_at(segments, 4)]
    for time, cause in zip(times, causes):
        assert cause < time < cause + 0.03 + 1 / SAMPLE_RATE
    sag_duration, interruption_duration = times[3] - times[0], times[2] - times[1]
    assert abs(sag_duration - 0.1) < 0.03 and abs(interruption_duration - 0.04) < 0.03
    values = run.events[:, 3]
    assert mean_square(0.03 * UN) - 1 < values[1] < mean_square(0.1 * UN)  # the start's own
    assert values[2] == values[3]                                        # the same lowest
    assert abs(values[3] - mean_square(0.03 * UN)) < 0.01 * mean_square(0.03 * UN) + 1


def test_swell_value_is_its_highest():
    """A swell's end carries the highest Urms(1/2)² of the swell (1.2 Un, the most the
    front end takes without clipping), its start that of its own half-cycle."""
    segments = [SETTLE, (0.1, 1.12 * UN), (0.1, 1.2 * UN), (0.1, 1.12 * UN), (0.3, UN)]
    run = LineModel(declared=DECLARED).run(line_voltage(segments, seed=8))
    assert edges(run) == [(SWELL, START), (SWELL, END)]
    highest = mean_square(1.2 * UN)
    assert abs(run.events[1, 3] / highest - 1) < 2e-4
    assert run.events[0, 3] < mean_square(1.15 * UN)


def test_loss_of_voltage_without_zero_crossings():
    """The voltage drops to nothing (so no zero crossings at all): half-cycles fall back
    to HALF_CYCLE_MAX samples, and a sag and an interruption start at the latest when
    a window of two of them ends (after the half-cycle the loss began in)."""
    segments = [SETTLE, (0.5, 0.0), (0.3, UN)]
    run = LineModel(declared=DECLARED).run(line_voltage(segments, seed=9))
    assert edges(run) == [(SAG, START), (INTERRUPTION, START), (INTERRUPTION, END), (SAG, END)]
    loss = sample_at(segments, 1) * SAMPLE_RATE
    assert loss < run.events[0, 0] <= run.events[1, 0] <= loss + 3 * HALF_CYCLE_MAX
    during = run.half_cycles[(run.half_cycles[:, 0] > loss + 200)
                             & (run.half_cycles[:, 0] < sample_at(segments, 2) * SAMPLE_RATE)]
    assert len(during) > 20 and np.all(np.diff(during[:, 0]) == HALF_CYCLE_MAX)
    assert np.all(during[1:, 1] == 0)


def test_declared_zero_records_no_events():
    run = LineModel(declared=0).run(line_voltage([(0.3, UN), (0.3, 0.0), (0.3, 1.3 * UN)]))
    assert len(run.events) == 0 and len(run.half_cycles) > 50


def test_no_event_at_power_up():
    """The first two half-cycle windows after reset are partial: no event comes of them."""
    for seed in range(20):
        run = LineModel(declared=DECLARED).run(line_voltage([(0.2, UN)], seed=seed))
        assert len(run.events) == 0


def test_levels_follow_their_percentages():
    """Other levels, for example EN 50160's 5 % interruption, move the comparisons."""
    levels = EventLevels(interruption_percent=5.0)
    for percent, events in ((4.9, [(SAG, START), (INTERRUPTION, START), (INTERRUPTION, END),
                                   (SAG, END)]),
                            (5.1, [(SAG, START), (SAG, END)])):
        run = LineModel(declared=DECLARED, levels=levels).run(
            line_voltage([SETTLE, (0.2, percent / 100 * UN), (0.3, UN)], seed=10))
        assert edges(run) == events
    with pytest.raises(ValueError, match="must satisfy"):
        EventLevels(sag_percent=5.0)


# --- The gateware against the model ------------------------------------------------------

#: What LineMonitor publishes, read after each sample it takes.
PUBLISHED = ("period", "measurements", "valid", "nco_step", "mean_square", "sag", "swell",
             "interruption")


def simulate_monitor(voltage, *, declared: int, consumer=None):
    """Feed ``voltage`` to a LineMonitor, each sample as soon as it is ready; return what
    it publishes once it has processed each sample, the event edges (index of the
    sample being processed, kind, end, value), and the most cycles from one sample
    taken to the next.

    ``consumer(cycle)`` says whether the event stream is ready in that cycle (always,
    without one)."""
    dut = LineMonitor(phase="l1")
    trace, events = [], []
    longest = 0

    async def bench(ctx):
        nonlocal longest
        ctx.set(dut.declared_voltage_squared_l1.value, declared)
        ctx.set(dut.samples.payload, int(voltage[0]))
        ctx.set(dut.samples.valid, 1)
        ctx.set(dut.events.ready, 1 if consumer is None else consumer(0))
        index, cycle, cycles = 0, 0, 0
        async for _, _, ready, valid, event_valid, event_ready, edge in ctx.tick().sample(
                dut.samples.ready, dut.samples.valid, dut.events.valid, dut.events.ready,
                dut.events.payload):
            cycle += 1
            cycles += 1
            if event_valid and event_ready:
                events.append((index, edge.kind.value, edge.end, edge.value))
            if ready and valid:  # sample `index` taken
                ctx.set(dut.samples.valid, 0)
            elif ready:  # and processed
                period, half_cycle = ctx.get(dut.line_period_l1), ctx.get(dut.voltage_half_cycle_l1)
                trace.append((period.period, period.measurements, period.valid,
                              ctx.get(dut.nco_step), half_cycle.mean_square, half_cycle.sag,
                              half_cycle.swell, half_cycle.interruption))
                longest = max(longest, cycles - 1)
                index, cycles = index + 1, 1
                if index == len(voltage):
                    break
                ctx.set(dut.samples.payload, int(voltage[index]))
                ctx.set(dut.samples.valid, 1)
            if consumer is not None:
                ctx.set(dut.events.ready, consumer(cycle))

    run_simulation(dut, bench)
    return trace, events, longest


def model_trace(voltage, *, declared: int):
    """The same as :func:`simulate_monitor` returns, from the model, sample by sample."""
    model = LineModel(declared=declared)
    trace, events = [], []
    for index, code in enumerate(voltage):
        run = model.run(np.array([code]))
        events += [(index, int(kind), int(end), int(value)) for _, kind, end, value in run.events]
        active = model.active
        trace.append((model.period, model.measurements % (1 << 16), int(model.valid),
                      model.nco_step, model.half_cycle_ms, int(active[EventKind.SAG]),
                      int(active[EventKind.SWELL]), int(active[EventKind.INTERRUPTION])))
    return trace, events


def random_voltage(rng: random.Random, count: int) -> list[int]:
    """Codes that reach every path: sines of 12 to 80 samples per cycle (so 64 cycles
    fit a short run; below 2 * BLANKING they cross too often to be seen) at amplitudes
    from below the hysteresis to clipping, with harmonics, noise and DC, and steps
    between them; silence; full-scale square waves; random codes."""
    limit = 1 << (spec.SAMPLE_WIDTH - 1)
    codes = []
    # One long steady sine first, so that at least one period is measured.
    kinds = ["steady"] + [rng.choice(["sine", "sine", "sine", "silence", "square", "random"])
                          for _ in range(count // 100)]
    for kind in kinds:
        period = rng.uniform(34, 36) if kind == "steady" else rng.uniform(12, 80)
        length = round(66 * period) if kind == "steady" else rng.randrange(10, 300)
        phase = rng.uniform(0, 2 * math.pi)
        amplitude = rng.choice([2e5, 3e6, 7e6] if kind == "steady" else [2e4, 2e5, 3e6, 7e6, 9e6])
        noise, offset = rng.choice([0, 50, 3e4]), rng.choice([0, 0, 2e3, -4e5])
        fifth = rng.choice([0, 0.1])
        for n in range(length):
            if kind in ("steady", "sine"):
                angle = 2 * math.pi * n / period + phase
                value = amplitude * (math.sin(angle) + fifth * math.sin(5 * angle))
                value += rng.gauss(0, noise) + offset if noise else offset
            elif kind == "silence":
                value = rng.gauss(0, 100)
            elif kind == "square":
                value = (limit - 1) * (1 if (n // 9) % 2 else -1)
            else:
                value = rng.randrange(-limit, limit)
            codes.append(max(-limit, min(limit - 1, round(value))))
    return codes[:count]


# Declared voltages that put the stimuli's amplitudes in every kind of event.
@pytest.mark.parametrize("seed, declared", [(3, 9000), (8, 30000)])
def test_gateware_equals_model(seed, declared):
    """On random stimuli, the gateware publishes the model's values after every sample,
    and the same event edges in the same order, in at most MAX_CYCLES_PER_SAMPLE
    cycles a sample."""
    voltage = random_voltage(random.Random(seed), 3000)
    trace, events, longest = simulate_monitor(voltage, declared=declared)
    expected_trace, expected_events = model_trace(voltage, declared=declared)
    for index, (got, want) in enumerate(zip(trace, expected_trace)):
        assert got == want, (index, dict(zip(PUBLISHED, got)), dict(zip(PUBLISHED, want)))
    assert events == expected_events
    assert longest <= MAX_CYCLES_PER_SAMPLE
    assert trace[-1][1] > 0, "the stimulus should measure a period"
    assert {kind for _, kind, _, _ in events} == {SAG, SWELL, INTERRUPTION}


def test_gateware_waits_for_a_slow_event_consumer():
    """With the event stream ready only one cycle in five, every edge still arrives, in
    order, and nothing else changes: the monitor holds each edge until it is taken."""
    voltage = random_voltage(random.Random(4), 3300)[2500:]  # past the steady start
    quick = simulate_monitor(voltage, declared=9000)
    slow = simulate_monitor(voltage, declared=9000, consumer=lambda cycle: cycle % 5 == 0)
    assert slow[:2] == quick[:2] and len(quick[1]) > 5


def test_gateware_measures_the_line_frequency():
    """Through the gateware, a 64.3 Hz line with 10 % THD: the period is within 1 mHz
    of the line's frequency, nco_step is 2**32 / period to the LSB (floor), and until
    then both are nominal (50 Hz) and not valid."""
    voltage = line_voltage([(1.02, UN)], frequency_hz=64.3, harmonics=THD_10, seed=11)
    trace, _, _ = simulate_monitor(voltage, declared=DECLARED)
    assert trace[0][:4] == (160 << 16, 0, 0, round(2 ** 32 * 50 / 8000))
    period, measurements, valid, nco_step = trace[-1][:4]
    assert (measurements, valid) == (1, 1)
    assert abs(frequency_hz(period) - 64.3) < 1e-3
    assert nco_step == 2 ** 48 // period
    assert trace == model_trace(voltage, declared=DECLARED)[0]


# --- The event log -----------------------------------------------------------------------

#: 2025-06-01T12:00:00Z.
NOON = 1_748_779_200
RECORD_FIELDS = ("seconds", "millisecond", "kind", "end", "phase", "value")


def record_value(ctx, log) -> dict:
    value = ctx.get(log.voltage_event_record)
    return {name: getattr(value, name) for name in RECORD_FIELDS}


async def read_record(ctx, log, number: int) -> dict:
    """The record in the slot of ``number``, as the bank reads it (two cycles after
    selecting, as the log's docstring says)."""
    ctx.set(log.voltage_event_select.value, number % (1 << 32))
    await ticks(ctx, 2)
    return record_value(ctx, log)


def in_ring(number: int, head: int, capacity: int) -> bool:
    return max(0, head - capacity) <= number < head


def log_edges(edges, *, capacity: int, phases: int = 1, reader=None):
    """Offer ``edges`` to an EventLog: each is (cycle, phase, kind, end, value), valid
    from that cycle until taken, with the UTC clock at NOON plus ``cycle`` ms. Return
    the head, the records in slots 0 to head, and each edge's expected record."""
    log = EventLog(capacity=capacity, phases=phases)
    result = {"expected": []}
    state = {"logging": True}

    async def bench(ctx):
        pending = {phase: [edge for edge in edges if edge[1] == phase] for phase in range(phases)}
        cycle = 0
        while any(pending.values()):
            ctx.set(log.utc_seconds, NOON + cycle // 1000)
            ctx.set(log.utc_millisecond, cycle % 1000)
            offered = {}
            for phase, queue in pending.items():
                port = log.events[phase]
                if queue and queue[0][0] <= cycle:
                    _, _, kind, end, value = queue[0]
                    ctx.set(port.payload, {"kind": EventKind(kind), "end": end, "value": value})
                    ctx.set(port.valid, 1)
                    offered[phase] = queue[0]
                else:
                    ctx.set(port.valid, 0)
            taken = [phase for phase in offered if ctx.get(log.events[phase].ready)]
            for phase in sorted(taken):
                _, _, kind, end, value = pending[phase].pop(0)
                result["expected"].append({"seconds": NOON + cycle // 1000,
                                           "millisecond": cycle % 1000, "kind": kind,
                                           "end": end, "phase": phase, "value": value})
            await ctx.tick()
            cycle += 1
        for phase in range(phases):
            ctx.set(log.events[phase].valid, 0)
        state["logging"] = False
        await ticks(ctx, 8)
        head = ctx.get(log.voltage_event_head.value)
        result["head"] = head
        result["capacity"] = ctx.get(log.voltage_event_capacity.value)
        result["records"] = [await read_record(ctx, log, number) for number in range(head + 1)]

    run_simulation(log, bench,
                   background=[] if reader is None else [reader(log, lambda: state["logging"])])
    return result


def random_edges(rng: random.Random, count: int, phases: int):
    cycle = 0
    edges = []
    for _ in range(count):
        cycle += rng.choice([0, 1, 3, 700, 1200])
        edges.append((cycle, rng.randrange(phases), rng.randrange(3), rng.randrange(2),
                      rng.randrange(1 << 16)))
    return edges


def test_event_log_ring_wraps_and_the_head_tells_the_host():
    """With a ring of 4, after 11 records the ring holds records 7 to 10, each slot the
    newest of its number modulo 4, each with the UTC time it was written and the edge
    as given; the head says 11 were written."""
    result = log_edges(random_edges(random.Random(20), 11, 1), capacity=4)
    expected = result["expected"]
    assert result["head"] == len(expected) == 11 and result["capacity"] == 4
    for number, record in enumerate(result["records"][:11]):
        assert record == expected[7 + (number - 7) % 4]
    assert len({record["seconds"] for record in expected}) > 1


def test_event_log_takes_phases_lowest_first_and_loses_nothing():
    """Three phases offering edges at once: one record per cycle, lower phases first, and
    every edge of every phase recorded in its order, with its phase."""
    edges = random_edges(random.Random(21), 40, 3)
    edges += [(edges[-1][0] + 100, phase, SAG, START, phase) for phase in (2, 1, 0)]  # at once
    result = log_edges(edges, capacity=64, phases=3)
    records, expected = result["records"][:result["head"]], result["expected"]
    assert records == expected and len(records) == len(edges)
    for phase in range(3):
        assert [(r["kind"], r["end"], r["value"]) for r in records if r["phase"] == phase] == \
            [(kind, end, value) for _, edge_phase, kind, end, value in edges if edge_phase == phase]
    assert [r["phase"] for r in records[-3:]] == [0, 1, 2]
    assert len({r["millisecond"] for r in records[-3:]}) == 3, "one record per cycle"


def test_event_log_is_readable_while_it_records():
    """A host reading a record every few cycles (the newest, the oldest, one not yet
    written) leaves the same ring as no host, and every record it reads that the head
    read afterwards says is still held is that number's record, whole."""
    edges = random_edges(random.Random(22), 60, 1)
    observed = []

    def reader(log, logging):
        async def bench(ctx):
            rng = random.Random(23)
            while logging():
                head_before = ctx.get(log.voltage_event_head.value)
                number = head_before + rng.randrange(-5, 2)
                record = await read_record(ctx, log, number)
                observed.append((number, head_before, ctx.get(log.voltage_event_head.value),
                                 record))
                await ticks(ctx, rng.randrange(0, 3))
        return bench

    quiet = log_edges(edges, capacity=4)
    busy = log_edges(edges, capacity=4, reader=reader)
    assert busy["records"] == quiet["records"] and busy["head"] == quiet["head"] == 60
    held = [(number, record) for number, before, after, record in observed
            if 0 <= number < before and in_ring(number, after, 4)]
    assert 50 < len(held) < len(observed)
    assert any(after > before for _, before, after, _ in observed), "reads met writes"
    for number, record in held:
        assert record == busy["expected"][number]


def test_event_log_parameters_are_checked():
    for capacity in (100, 1):
        with pytest.raises(ValueError, match="power of two from 2"):
            EventLog(capacity=capacity)
    with pytest.raises(ValueError, match="1 to 3 phases"):
        EventLog(capacity=64, phases=4)


class MonitoredPhase(wiring.Component):
    """A LineMonitor feeding an EventLog, as the meter wires them."""

    def __init__(self, *, declared: int):
        self.monitor = LineMonitor(phase="l1")
        self.log = EventLog(capacity=16)
        self._declared = declared
        super().__init__({
            "samples": In(stream.Signature(signed(spec.SAMPLE_WIDTH))),
            "utc_seconds": In(32),
            "utc_millisecond": In(10),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.monitor = monitor = self.monitor
        m.submodules.log = log = self.log
        wiring.connect(m, wiring.flipped(self.samples), monitor.samples)
        wiring.connect(m, monitor.events, log.events[0])
        m.d.comb += [
            monitor.declared_voltage_squared_l1.value.eq(self._declared),
            log.utc_seconds.eq(self.utc_seconds),
            log.utc_millisecond.eq(self.utc_millisecond),
        ]
        return m


def test_events_reach_the_log_with_the_utc_time_of_their_half_cycle():
    """A LineMonitor's edges through an EventLog: one record each, in order, with the
    model's kind and value, stamped with the UTC time of the sample that decided it
    (the clock here advances a millisecond every 8 samples, as at 8 kSPS)."""
    # 40 samples a cycle, so events come quickly; the declared voltage is the amplitude
    # as this meter, which assumes 50 Hz (160 samples) until it measures, sees it.
    amplitude = 6e6
    declared = round(amplitude ** 2 / 2 / 2 ** 30 * 40 / 160)
    levels = [1.0] * 200 + [0.5] * 200 + [0.03] * 120 + [0.5] * 200 + [1.0] * 200
    voltage = [round(amplitude * level * math.sin(2 * math.pi * n / 40 + 0.3))
               for n, level in enumerate(levels)]
    top = MonitoredPhase(declared=declared)
    records = []

    def utc(index):
        return NOON + index // 8000, index % 8000 // 8

    async def bench(ctx):
        for index, code in enumerate(voltage):
            seconds, millisecond = utc(index + 7750)  # a second passes during the run
            ctx.set(top.utc_seconds, seconds)
            ctx.set(top.utc_millisecond, millisecond)
            ctx.set(top.samples.payload, code)
            ctx.set(top.samples.valid, 1)
            async for _, _, taken in ctx.tick().sample(top.samples.ready):
                if taken:
                    break
            ctx.set(top.samples.valid, 0)
            async for _, _, idle in ctx.tick().sample(top.samples.ready):
                if idle:
                    break
        for number in range(ctx.get(top.log.voltage_event_head.value)):
            records.append(await read_record(ctx, top.log, number))

    run_simulation(top, bench)
    _, expected = model_trace(voltage, declared=declared)
    assert [(kind, end) for _, kind, end, _ in expected] == [
        (SAG, START), (INTERRUPTION, START), (INTERRUPTION, END), (SAG, END)]
    assert records == [dict(zip(RECORD_FIELDS, (*utc(index + 7750), kind, end, 0, value)))
                       for index, kind, end, value in expected]
    assert records[0]["seconds"] == NOON and records[-1]["seconds"] == NOON + 1


# --- Registers -----------------------------------------------------------------------------

def line_register_map() -> RegisterMap:
    register_map = RegisterMap()
    register_map.add_block(0x0400, line_registers("l1"))
    register_map.add_block(0x0500, EventLog.REGISTERS)
    return register_map


class PhaseBehindBank(wiring.Component):
    """A LineMonitor and an EventLog behind a RegisterBank, wired by register name."""

    def __init__(self):
        self.register_map = line_register_map()
        self.monitor = LineMonitor(phase="l1")
        self.log = EventLog(capacity=16)
        super().__init__({
            "bus": In(RegisterBus(data_width=self.register_map.data_width)),
            "seal_open": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = RegisterBank(self.register_map)
        m.submodules.monitor = monitor = self.monitor
        m.submodules.log = log = self.log
        wiring.connect(m, wiring.flipped(self.bus), bank.bus)
        wiring.connect(m, monitor.events, log.events[0])
        connect_registers(m, bank, monitor, monitor.registers)
        connect_registers(m, bank, log, log.registers)
        m.d.comb += bank.seal_open.eq(self.seal_open)
        return m


def test_registers_through_a_bank():
    """The declared voltage is sealed and starts at 230 V on the nominal front end; the
    measurements are read-only; a record is one 8-byte read; the log starts empty."""
    top = PhaseBehindBank()
    answers = {}

    async def access(ctx, name, value=None):
        register_map = top.register_map
        register = register_map[name]
        ctx.set(top.bus.address, register_map.address_of(name))
        ctx.set(top.bus.write, value is not None)
        ctx.set(top.bus.length, 0 if value is None else register.size)
        ctx.set(top.bus.w_data, value or 0)
        ctx.set(top.bus.strobe, 1)
        status, data, length = ctx.get(top.bus.status), ctx.get(top.bus.r_data), ctx.get(top.bus.r_length)
        await ctx.tick()
        ctx.set(top.bus.strobe, 0)
        await ctx.tick()
        return Status(status), data, length

    async def bench(ctx):
        answers["declared"] = await access(ctx, "declared_voltage_squared_l1")
        answers["sealed"] = await access(ctx, "declared_voltage_squared_l1", 1234)
        ctx.set(top.seal_open, 1)
        answers["open"] = await access(ctx, "declared_voltage_squared_l1", 1234)
        answers["after"] = await access(ctx, "declared_voltage_squared_l1")
        answers["period"] = await access(ctx, "line_period_l1")
        answers["period write"] = await access(ctx, "line_period_l1", 1)
        answers["record"] = await access(ctx, "voltage_event_record")
        answers["capacity"] = await access(ctx, "voltage_event_capacity")
        answers["head"] = await access(ctx, "voltage_event_head")

    run_simulation(top, bench)
    assert answers["declared"] == (Status.OK, DECLARED, 2)
    assert answers["sealed"][0] == Status.SEALED
    assert answers["open"][0] == Status.OK and answers["after"] == (Status.OK, 1234, 2)
    assert answers["period"] == (Status.OK, 160 << 16, 6)  # nominal, no measurement, not valid
    assert answers["period write"][0] == Status.READ_ONLY
    assert answers["record"][0] == Status.OK and answers["record"][2] == 8
    assert answers["capacity"][1:] == (16, 4) and answers["head"][1:] == (0, 4)
