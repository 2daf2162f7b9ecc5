# amaranth: UnusedElaboratable=no
"""The interlock's monitored value on a meter: the block demand from energy quanta,
against the sum a person would do (quanta in the period times 3600 / period)."""

import random

import pytest

from refmeter.gateware.interlock.demand import Demand

from gateware_helpers import run_simulation

PERIOD_S = 4
TICKS_PER_PERIOD = PERIOD_S * 1000


def test_each_period_reports_its_net_quanta_as_average_power():
    dut = Demand(phases=3, period_s=PERIOD_S)
    rng = random.Random(7)
    # Per period, per cycle: the bits of each phase's import and export quanta.
    periods = [[(rng.getrandbits(3) if rng.random() < 0.05 else 0,
                 rng.getrandbits(3) if rng.random() < weight else 0)
                for _ in range(TICKS_PER_PERIOD)]
               for weight in (0.0, 0.02, 0.2, 0.05)]
    expected = [sum(bin(imported).count("1") - bin(exported).count("1")
                    for imported, exported in period) * 3600 // PERIOD_S
                for period in periods]
    reported = []

    async def testbench(ctx):
        ctx.set(dut.tick_ms, 1)    # a millisecond every cycle
        for period in periods:
            for imported, exported in period:
                ctx.set(dut.imported, imported)
                ctx.set(dut.exported, exported)
                await ctx.tick()
                if ctx.get(dut.power.valid):
                    reported.append(ctx.get(dut.power.payload))
        ctx.set(dut.imported, 0)
        ctx.set(dut.exported, 0)
        await ctx.tick()
        if ctx.get(dut.power.valid):
            reported.append(ctx.get(dut.power.payload))

    run_simulation(dut, testbench)
    assert reported == expected
    assert expected[0] > 0 > expected[2]    # importing, then exporting


def test_a_period_that_does_not_divide_an_hour_is_refused():
    with pytest.raises(ValueError, match="divide an hour"):
        Demand(period_s=7)
