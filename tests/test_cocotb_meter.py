"""The Verilog of the gateware under cocotb and Verilator: the whole meter top
through its pins, and one phase's metrology against the bit-exact model."""

from refmeter.gateware.meter import DEMO_METER_ID, Meter
from refmeter.gateware.metrology.phase import PhaseMetrology
from refmeter.sim.benches import run_bench

#: Hz. A slow clock keeps the heartbeat test's simulated second short (the Verilog
#: that cocotb can see into runs some 50 thousand cycles per second); the bench
#: attaches no ADC, which could not be served at this rate.
CLK_FREQ = 1_000_000
BAUD = 100_000         # bits/s: 10 clock cycles per bit
#: Locally administered, and not the demo id, so a meter ignoring the parameter shows.
METER_ID = 0x02_52_45_46_5E_ED_00_2A
BUILD_HASH = 0xC0FF_EE42

assert METER_ID != DEMO_METER_ID


def test_meter_top_over_uart(tmp_path, verilator_environment):
    """Every bench test in meter_top.py passes against the Verilog of a non-default Meter."""
    meter = Meter(clk_freq=CLK_FREQ, baud=BAUD, meter_id=METER_ID, build_hash=BUILD_HASH)
    assert run_bench(meter, toplevel="meter", module="meter_top", work_dir=tmp_path, environment={
        "REFMETER_CLK_FREQ": str(CLK_FREQ),
        "REFMETER_BAUD": str(BAUD),
        "REFMETER_METER_ID": hex(METER_ID),
        "REFMETER_BUILD_HASH": hex(BUILD_HASH),
    }) == (6, 0)


def test_phase_metrology_equals_model(tmp_path, verilator_environment):
    """Thousands of random sample sets through the Verilog give the model's windows,
    reactive windows and energy."""
    log2 = 8
    assert run_bench(PhaseMetrology(fundamental_window_log2=log2), toplevel="phase",
                     module="phase_metrology", work_dir=tmp_path, environment={
                         "REFMETER_SEED": "2", "REFMETER_SAMPLES": "12000",
                         "REFMETER_FUNDAMENTAL_LOG2": str(log2),
                     }) == (1, 0)
