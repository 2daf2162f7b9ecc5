"""cocotb bench: the Verilog of one phase's metrology against the bit-exact model.

Drives thousands of sample sets (sinusoids with DC offsets, full-scale extremes
and random codes) through ``PhaseMetrology`` and compares every published window
and fundamental window and the final energy state (active and reactive) with
:class:`refmeter.sim.metrology.PhaseModel` on the same stimulus, reading them from
the ``results`` port after each sample set. The seed, the
length and the fundamental window come from the environment (``REFMETER_SEED``,
``REFMETER_SAMPLES``, ``REFMETER_FUNDAMENTAL_LOG2``), set by
``tests/test_cocotb_meter.py``.
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from refmeter.gateware.metrology import spec
from refmeter.gateware.metrology.phase import PUBLISHED, published_words
from refmeter.sim.metrology import PhaseCalibration, PhaseModel

CODE_LIMIT = 1 << (spec.SAMPLE_WIDTH - 1)
SAMPLE_MASK = (1 << spec.SAMPLE_WIDTH) - 1
#: Published values that are signed (the others are unsigned).
SIGNED = {"window_active", "energy_fraction", "window_reactive", "reactive_fraction"}
#: The stimulus' sinusoids, cycles per sample set.
STIMULUS_FREQUENCY = 0.0393 / (2 * np.pi)


def stimulus(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Line-like sinusoids with DC offsets, 20 % random codes and 2 % full-scale extremes."""
    n = np.arange(count)
    omega = 2 * np.pi * STIMULUS_FREQUENCY
    voltage = (6e6 * np.sin(omega * n) + 2e5).astype(np.int64)
    current = (rng.choice([3e6, 3e3]) * np.sin(omega * n - 0.5) - 1e4).astype(np.int64)
    for probability, values in ((0.2, None), (0.02, [-CODE_LIMIT, CODE_LIMIT - 1])):
        chosen = rng.random(count) < probability
        for codes in (voltage, current):
            codes[chosen] = (rng.integers(-CODE_LIMIT, CODE_LIMIT, chosen.sum()) if values is None
                             else rng.choice(values, chosen.sum()))
    return voltage, current


async def read_published(dut, addresses: dict[str, int], name: str) -> int:
    """A published value, read from ``results`` a word a cycle, lowest first; call it
    at a falling edge of the clock, it returns at one."""
    width = PUBLISHED[name]
    raw = 0
    for k in range(-(-width // 16)):
        dut.results__addr.value = addresses[name] + k
        await RisingEdge(dut.clk)
        await ReadOnly()
        raw |= int(dut.results__data.value) << (16 * k)
        await FallingEdge(dut.clk)
    raw &= (1 << width) - 1
    return raw - (1 << width) if name in SIGNED and raw >> (width - 1) else raw


@cocotb.test()
async def gateware_equals_model(dut):
    """Every window's three sums, every fundamental window's q and the final energy
    state equal the model's."""
    rng = np.random.default_rng(int(os.environ["REFMETER_SEED"]))
    voltage, current = stimulus(rng, int(os.environ["REFMETER_SAMPLES"]))
    calibration = PhaseCalibration(energy_quantum=int(rng.integers(1 << 41, 1 << 44)),
                                   noload_threshold=int(rng.integers(0, 1 << 46)),
                                   phase_coefficient=int(rng.integers(-(1 << 16), 1 << 16)),
                                   window_samples=37)
    nco_step = spec.nco_step(STIMULUS_FREQUENCY * (1 + rng.uniform(-1e-3, 1e-3)), 1)
    log2 = int(os.environ["REFMETER_FUNDAMENTAL_LOG2"])
    model = PhaseModel(calibration, fundamental_window_log2=log2, nco_step=nco_step)
    addresses = published_words(log2)
    expected = [tuple(int(x) for x in row[:3]) for row in model.run(voltage, current)]

    dut.nco_step.value = nco_step
    dut.phase_coefficient.value = calibration.phase_coefficient
    dut.energy_quantum.value = calibration.energy_quantum
    dut.noload_threshold.value = calibration.noload_threshold
    dut.window_samples.value = calibration.window_samples
    dut.sample__valid.value = 0
    dut.sample__payload.value = 0
    dut.results__en.value = 1
    dut.results__addr.value = 0
    dut.rst.value = 1
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0

    async def until_ready():
        """Wait for the phase to be ready (done with the last set), to a falling edge."""
        await FallingEdge(dut.clk)
        if not dut.sample__ready.value:
            await RisingEdge(dut.sample__ready)
            await FallingEdge(dut.clk)

    windows = []
    reactive_windows = []
    completed = fundamental_completed = 0
    await until_ready()
    for v, i in zip(voltage.tolist(), current.tolist()):
        dut.sample__payload.value = (v & SAMPLE_MASK) | ((i & SAMPLE_MASK) << spec.SAMPLE_WIDTH)
        dut.sample__valid.value = 1
        await RisingEdge(dut.clk)  # the transfer
        dut.sample__valid.value = 0
        await until_ready()
        count = await read_published(dut, addresses, "windows_completed")
        if count != completed:
            windows.append(tuple([await read_published(dut, addresses, name) for name in
                                  ("window_active", "window_voltage_squared",
                                   "window_current_squared")]))
            completed = count
        count = await read_published(dut, addresses, "fundamental_windows_completed")
        if count != fundamental_completed:
            reactive_windows.append(await read_published(dut, addresses, "window_reactive"))
            fundamental_completed = count

    mismatch = next((n for n, (got, want) in enumerate(zip(windows, expected)) if got != want), None)
    assert len(windows) == len(expected) and mismatch is None, (
        f"{len(windows)} windows published, {len(expected)} expected; first mismatch: {mismatch}")
    assert await read_published(dut, addresses, "active_import_wh") == model.import_quanta
    assert await read_published(dut, addresses, "active_export_wh") == model.export_quanta
    assert await read_published(dut, addresses, "energy_fraction") == model.energy_fraction
    assert model.import_quanta + model.export_quanta > 10, "the stimulus should count quanta"
    assert reactive_windows == [q for q, _ in model.reactive_windows]
    assert tuple([await read_published(dut, addresses, f"reactive_quadrant{n}_varh")
                  for n in range(1, 5)]) == model.reactive_quanta
    assert await read_published(dut, addresses, "reactive_fraction") == model.reactive_fraction
    assert sum(model.reactive_quanta) > 10, "the stimulus should count reactive quanta"
