"""Metrology gateware against its bit-exact model, and the model's own properties."""

import random

import numpy as np
import pytest

from refmeter.gateware.metrology import spec
from refmeter.gateware.metrology.phase import PUBLISHED, PhaseMetrology
from refmeter.sim.metrology import PhaseCalibration, PhaseModel

from gateware_helpers import run_simulation

CODE_LIMIT = 1 << (spec.SAMPLE_WIDTH - 1)


def _stimulus(rng: random.Random, count: int) -> tuple[list[int], list[int]]:
    """Sample sets that reach every corner: full-scale extremes, sinusoids with DC
    offsets (which exercise DC removal and saturation), and random codes."""
    voltage, current = [], []
    for n in range(count):
        kind = rng.random()
        if kind < 0.1:
            v, i = rng.choice([-CODE_LIMIT, CODE_LIMIT - 1, 0]), rng.choice([-CODE_LIMIT, CODE_LIMIT - 1, 0])
        elif kind < 0.6:
            v = int(6e6 * np.sin(0.04 * n) + 2e5)
            i = int(rng.choice([3e6, 3e3]) * np.sin(0.04 * n - 0.5) - 1e4)
        else:
            v, i = rng.randrange(-CODE_LIMIT, CODE_LIMIT), rng.randrange(-CODE_LIMIT, CODE_LIMIT)
        voltage.append(v)
        current.append(i)
    return voltage, current


#: Short fundamental windows, so that a short stimulus ends several.
FUNDAMENTAL_WINDOW_LOG2 = 4


#: Published values that are signed (the others are unsigned).
SIGNED = {"window_active", "energy_fraction", "window_reactive", "reactive_fraction"}


async def read_published(ctx, dut, name: str) -> int:
    """A published value, read from ``results`` a word a cycle, lowest first, as the
    register bank reads it."""
    width = PUBLISHED[name]
    words = -(-width // 16)
    raw = 0
    for k in range(words):
        ctx.set(dut.results.addr, dut.published[name] + k)
        await ctx.tick()
        raw |= ctx.get(dut.results.data) << (16 * k)
    raw &= (1 << width) - 1
    return raw - (1 << width) if name in SIGNED and raw >> (width - 1) else raw


def _run_gateware(calibration: PhaseCalibration, voltage: list[int], current: list[int],
                  nco_step: int = spec.nco_step(50)):
    """Feed the sample sets one by one; after each, read what it published: the window
    sums when ``windows_completed`` has counted a window, ``window_reactive`` when
    ``fundamental_windows_completed`` has, and at the end the energy state. Every
    quantum's pulse is counted too, and must agree with the published counters."""
    dut = PhaseMetrology(fundamental_window_log2=FUNDAMENTAL_WINDOW_LOG2)
    windows = []
    reactive_windows = []
    final = {}
    pulses = dict.fromkeys(("imported", "exported", "reactive_imported", "reactive_exported"), 0)

    async def count_pulses(ctx):
        async for values in ctx.tick().sample(*(getattr(dut, name) for name in pulses)):
            for name, value in zip(pulses, values[-len(pulses):]):
                pulses[name] += value

    async def feed(ctx):
        ctx.set(dut.nco_step, nco_step)
        ctx.set(dut.phase_coefficient, calibration.phase_coefficient)
        ctx.set(dut.energy_quantum, calibration.energy_quantum)
        ctx.set(dut.noload_threshold, calibration.noload_threshold)
        ctx.set(dut.window_samples, calibration.window_samples)
        completed = fundamental_completed = 0
        for v, i in zip(voltage, current):
            ctx.set(dut.sample.payload, {"voltage": v, "current": i})
            ctx.set(dut.sample.valid, 1)
            await ctx.tick().until(dut.sample.ready)
            ctx.set(dut.sample.valid, 0)
            await ctx.tick().until(dut.sample.ready)
            count = await read_published(ctx, dut, "windows_completed")
            if count != completed:
                assert count == completed + 1
                windows.append(tuple([await read_published(ctx, dut, name) for name in
                                      ("window_active", "window_voltage_squared",
                                       "window_current_squared")]))
                completed = count
            count = await read_published(ctx, dut, "fundamental_windows_completed")
            if count != fundamental_completed:
                assert count == fundamental_completed + 1
                reactive_windows.append(await read_published(ctx, dut, "window_reactive"))
                fundamental_completed = count
        final.update(imported=await read_published(ctx, dut, "active_import_wh"),
                     exported=await read_published(ctx, dut, "active_export_wh"),
                     fraction=await read_published(ctx, dut, "energy_fraction"),
                     reactive_quanta=tuple([await read_published(ctx, dut, f"reactive_quadrant{n}_varh")
                                            for n in range(1, 5)]),
                     reactive_fraction=await read_published(ctx, dut, "reactive_fraction"))

    run_simulation(dut, feed, background=[count_pulses])
    quadrants = final["reactive_quanta"]
    assert pulses == {"imported": final["imported"], "exported": final["exported"],
                      "reactive_imported": quadrants[0] + quadrants[1],
                      "reactive_exported": quadrants[2] + quadrants[3]}
    return windows, reactive_windows, final


def _run_model(calibration: PhaseCalibration, voltage: list[int], current: list[int],
               nco_step: int = spec.nco_step(50)):
    """The model's windows, reactive windows and final state, as _run_gateware gives them."""
    model = PhaseModel(calibration, fundamental_window_log2=FUNDAMENTAL_WINDOW_LOG2,
                       nco_step=nco_step)
    windows = [tuple(int(x) for x in row[:3]) for row in model.run(np.array(voltage), np.array(current))]
    final = {"imported": model.import_quanta, "exported": model.export_quanta,
             "fraction": model.energy_fraction, "reactive_quanta": model.reactive_quanta,
             "reactive_fraction": model.reactive_fraction}
    return windows, [q for q, _ in model.reactive_windows], final


# Seeds whose stimulus counts active and reactive quanta, between them in all four
# quadrants, with and without a no-load threshold, at and far from the line frequency.
@pytest.mark.parametrize("seed", [0, 2, 8, 15])
def test_gateware_equals_model(seed):
    """On random stimuli and calibration, every window sum and the energy state match."""
    rng = random.Random(seed)
    calibration = PhaseCalibration(
        energy_quantum=rng.choice([1 << 40, 1 << 45, 3 << 46]),
        noload_threshold=rng.choice([0, 1 << 44, 1 << 50]),
        phase_coefficient=rng.randrange(-(1 << 16), 1 << 16),
        window_samples=rng.choice([1, 5, 13]))
    voltage, current = _stimulus(rng, 160)
    # Near the stimulus' sinusoids (0.04 rad per sample set), anywhere else at times.
    nco_step = rng.choice([round(0.04 / (2 * np.pi) * (1 << spec.NCO_WIDTH)) + rng.randrange(-9999, 9999),
                           rng.randrange(1 << spec.NCO_WIDTH)])

    gateware = _run_gateware(calibration, voltage, current, nco_step)
    model = _run_model(calibration, voltage, current, nco_step)

    assert gateware == model
    _, reactive_windows, final = model
    assert len(reactive_windows) == 160 >> FUNDAMENTAL_WINDOW_LOG2
    assert final["imported"] + final["exported"] > 0, "the stimulus should count quanta"
    assert sum(final["reactive_quanta"]) > 0, "the stimulus should count reactive quanta"


#: Calibrations at the ends of their ranges: phase coefficients of -1 and nearly +1
#: (their bit 16 differs from the sign, which random ones of |a| < 0.5 never show),
#: quanta of 0, 1 and the largest, windows of 0, 1 and 2 samples, gates that close.
EXTREME_CALIBRATIONS = {
    "coefficient -1": PhaseCalibration(energy_quantum=1 << 40, phase_coefficient=-(1 << 17),
                                       window_samples=7),
    "coefficient +1": PhaseCalibration(energy_quantum=3 << 46, noload_threshold=1 << 44,
                                       phase_coefficient=(1 << 17) - 1, window_samples=3),
    "largest quantum": PhaseCalibration(energy_quantum=(1 << 60) - 1,
                                        noload_threshold=(1 << 60) - 1,
                                        phase_coefficient=-100_000, window_samples=0),
    "quantum 1": PhaseCalibration(energy_quantum=1, noload_threshold=1, phase_coefficient=99_999,
                                  window_samples=1),
    "quantum 0": PhaseCalibration(energy_quantum=0, window_samples=2),
}


@pytest.mark.parametrize("name", EXTREME_CALIBRATIONS)
def test_gateware_equals_model_at_calibration_extremes(name):
    """The windows and the energy state match at the ends of the calibration ranges."""
    calibration = EXTREME_CALIBRATIONS[name]
    voltage, current = _stimulus(random.Random(name), 64)

    assert _run_gateware(calibration, voltage, current) == _run_model(calibration, voltage, current)


def test_energy_reaching_exactly_one_quantum_counts_it():
    """Energy equal to the quantum counts one quantum and leaves a zero fraction,
    in the gateware and the model alike (the boundary of the spec's >=)."""
    rng = random.Random(11)
    voltage, current = _stimulus(rng, 40)
    # With a one-sample window the published sums are the per-sample powers, so
    # their running sum is the energy the gate lets through.
    probe = PhaseModel(PhaseCalibration(energy_quantum=(1 << 60) - 1, window_samples=1))
    energy = np.cumsum(probe.run(np.array(voltage), np.array(current))[:, 0])
    last = int(np.argmax(energy))  # first time the energy reaches its maximum
    quantum = int(energy[last])
    assert quantum > 0 and energy[:last + 1].min() > -quantum
    calibration = PhaseCalibration(energy_quantum=quantum, window_samples=1)
    voltage, current = voltage[:last + 1], current[:last + 1]

    _, _, final = _run_gateware(calibration, voltage, current)
    assert (final["imported"], final["exported"], final["fraction"]) == (1, 0, 0)
    model = PhaseModel(calibration)
    model.run(np.array(voltage), np.array(current))
    assert (model.import_quanta, model.export_quanta, model.energy_fraction) == (1, 0, 0)
