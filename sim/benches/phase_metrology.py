"""cocotb bench: the Verilog of one phase's metrology against the bit-exact model.

Drives thousands of sample sets (sinusoids with DC offsets, full-scale extremes
and random codes) through ``PhaseMetrology`` and compares every published window
and the final energy state with :class:`refmeter.sim.metrology.PhaseModel` on the
same stimulus. The seed and the length come from the environment
(``REFMETER_SEED``, ``REFMETER_SAMPLES``), set by ``tests/test_cocotb_metrology.py``.
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


def stimulus(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Line-like sinusoids with DC offsets, 20 % random codes and 2 % full-scale extremes."""
    n = np.arange(count)
    voltage = (6e6 * np.sin(0.0393 * n) + 2e5).astype(np.int64)
    current = (rng.choice([3e6, 3e3]) * np.sin(0.0393 * n - 0.5) - 1e4).astype(np.int64)
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
    """Every window's three sums and the final energy state equal the model's."""
    rng = np.random.default_rng(int(os.environ["REFMETER_SEED"]))
    voltage, current = stimulus(rng, int(os.environ["REFMETER_SAMPLES"]))
    calibration = PhaseCalibration(energy_quantum=int(rng.integers(1 << 41, 1 << 44)),
                                   noload_threshold=int(rng.integers(0, 1 << 46)),
                                   phase_coefficient=int(rng.integers(-(1 << 16), 1 << 16)),
                                   window_samples=37)
    model = PhaseModel(calibration)
    expected = [tuple(int(x) for x in row[:3]) for row in model.run(voltage, current)]

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

    async def monitor():
        while True:
            await RisingEdge(dut.window_done)
            await ReadOnly()
            window = int(dut.window.value)
            windows.append((_signed(window & SUM_MASK, spec.SUM_WIDTH),
                            (window >> spec.SUM_WIDTH) & SUM_MASK, window >> (2 * spec.SUM_WIDTH)))
    cocotb.start_soon(monitor())

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
