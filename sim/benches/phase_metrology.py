"""cocotb bench: the Verilog of one phase's metrology against the bit-exact model.

Drives thousands of sample sets (sinusoids with DC offsets, full-scale extremes
and random codes) through ``PhaseMetrology`` and compares every published window
and fundamental window and the final energy state (active and reactive) with
:class:`refmeter.sim.metrology.PhaseModel` on the same stimulus. The seed, the
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
from refmeter.sim.metrology import PhaseCalibration, PhaseModel

CODE_LIMIT = 1 << (spec.SAMPLE_WIDTH - 1)
SAMPLE_MASK = (1 << spec.SAMPLE_WIDTH) - 1
SUM_MASK = (1 << spec.SUM_WIDTH) - 1
COUNTER_MASK = (1 << spec.COUNTER_WIDTH) - 1
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


def _signed(raw: int, width: int) -> int:
    return raw - (1 << width) if raw >> (width - 1) else raw


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
    model = PhaseModel(calibration, fundamental_window_log2=int(os.environ["REFMETER_FUNDAMENTAL_LOG2"]),
                       nco_step=nco_step)
    expected = [tuple(int(x) for x in row[:3]) for row in model.run(voltage, current)]

    dut.nco_step.value = nco_step
    dut.phase_coefficient.value = calibration.phase_coefficient
    dut.energy_quantum.value = calibration.energy_quantum
    dut.noload_threshold.value = calibration.noload_threshold
    dut.window_samples.value = calibration.window_samples
    dut.sample__valid.value = 0
    dut.sample__payload.value = 0
    dut.rst.value = 1
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0

    windows = []
    reactive_windows = []

    async def monitor():
        while True:
            await RisingEdge(dut.window_done)
            await ReadOnly()
            window = int(dut.window.value)
            windows.append((_signed(window & SUM_MASK, spec.SUM_WIDTH),
                            (window >> spec.SUM_WIDTH) & SUM_MASK, window >> (2 * spec.SUM_WIDTH)))

    async def monitor_fundamental():
        while True:
            await RisingEdge(dut.fundamental_done)
            await ReadOnly()
            reactive_windows.append(_signed(int(dut.window_reactive.value), spec.REACTIVE_WIDTH))
    cocotb.start_soon(monitor())
    cocotb.start_soon(monitor_fundamental())

    for v, i in zip(voltage.tolist(), current.tolist()):
        dut.sample__payload.value = (v & SAMPLE_MASK) | ((i & SAMPLE_MASK) << spec.SAMPLE_WIDTH)
        dut.sample__valid.value = 1
        await FallingEdge(dut.clk)
        while not dut.sample__ready.value:
            await RisingEdge(dut.sample__ready)
            await FallingEdge(dut.clk)
        await RisingEdge(dut.clk)  # the transfer
        dut.sample__valid.value = 0
    await FallingEdge(dut.clk)
    while not dut.sample__ready.value:  # the last set finishes
        await RisingEdge(dut.sample__ready)
    await ReadOnly()

    mismatch = next((n for n, (got, want) in enumerate(zip(windows, expected)) if got != want), None)
    assert len(windows) == len(expected) and mismatch is None, (
        f"{len(windows)} windows published, {len(expected)} expected; first mismatch: {mismatch}")
    assert int(dut.import_quanta.value) == model.import_quanta
    assert int(dut.export_quanta.value) == model.export_quanta
    assert _signed(int(dut.energy_fraction.value), spec.FRACTION_WIDTH) == model.energy_fraction
    assert model.import_quanta + model.export_quanta > 10, "the stimulus should count quanta"
    assert reactive_windows == [q for q, _ in model.reactive_windows]
    quanta = int(dut.reactive_quanta.value)
    assert tuple((quanta >> (spec.COUNTER_WIDTH * k)) & COUNTER_MASK for k in range(4)) \
        == model.reactive_quanta
    assert _signed(int(dut.reactive_fraction.value), spec.REACTIVE_WIDTH) == model.reactive_fraction
    assert sum(model.reactive_quanta) > 10, "the stimulus should count reactive quanta"
