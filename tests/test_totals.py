# amaranth: UnusedElaboratable=no
"""The total energy registers: the algebraic sum of the phases' quanta, netted so
that opposing flows never count twice and nothing is lost (gateware/metrology/totals.py)."""

import random

import pytest

from gateware_helpers import run_simulation
from refmeter.gateware.metrology.totals import EnergyTotals


def drive(phases: int, events: list[tuple[list[int], list[int]]], *, gap: int = 3):
    """Feed ``events`` (per event: the phases that import a quantum, those that
    export one) as active quanta and, mirrored, reactive ones (imports as -R, exports
    as +R); return after each event the (import, export, balance) of both totals."""
    dut = EnergyTotals(phases=phases)
    seen = []

    async def bench(ctx):
        for importing, exporting in events:
            active = (sum(1 << p for p in importing), sum(1 << p for p in exporting))
            ctx.set(dut.active_imported, active[0])
            ctx.set(dut.active_exported, active[1])
            ctx.set(dut.reactive_imported, active[1])
            ctx.set(dut.reactive_exported, active[0])
            await ctx.tick()
            for signal in (dut.active_imported, dut.active_exported,
                           dut.reactive_imported, dut.reactive_exported):
                ctx.set(signal, 0)
            for _ in range(gap):  # quanta come thousands of cycles apart; a few suffice
                await ctx.tick()
            seen.append((
                (ctx.get(dut.active_import_wh_total.value), ctx.get(dut.active_export_wh_total.value),
                 ctx.get(dut.total_balance.active)),
                (ctx.get(dut.reactive_import_varh_total.value),
                 ctx.get(dut.reactive_export_varh_total.value), ctx.get(dut.total_balance.reactive)),
            ))
            assert ctx.get(dut.import_wh) == seen[-1][0][0]
            assert ctx.get(dut.export_wh) == seen[-1][0][1]

    run_simulation(dut, bench)
    return seen


@pytest.mark.parametrize("phases", [1, 2, 3])
def test_totals_never_lose_a_quantum_and_hold_back_less_than_two_phases_worth(phases):
    rng = random.Random(phases)
    events = []
    for _ in range(300):
        movers = rng.sample(range(phases), rng.randint(1, phases))
        importing = [p for p in movers if rng.random() < 0.6]
        events.append((importing, [p for p in movers if p not in importing]))
    net = 0
    last = ((0, 0), (0, 0))
    for (importing, exporting), (active, reactive) in zip(events, drive(phases, events)):
        net += len(importing) - len(exporting)
        assert active[0] - active[1] + active[2] == net
        assert reactive[0] - reactive[1] + reactive[2] == -net
        assert abs(active[2]) <= 2 * phases - 1 and abs(reactive[2]) <= 2 * phases - 1
        assert active[:2] >= last[0] and reactive[:2] >= last[1]   # counters only grow
        last = (active[:2], reactive[:2])


@pytest.mark.parametrize("phases", [2, 3])
def test_a_phase_exporting_what_another_imports_counts_in_neither_total(phases):
    # l1 imports and l2 exports at the same rate, their quanta falling in any order:
    # the counted net wanders within what the phases' fractions could cancel.
    rng = random.Random(7)
    events, net = [], 0
    for _ in range(400):
        step = rng.choice([1, -1]) if abs(net) < phases - 1 else -net // abs(net)
        net += step
        events.append(([0], []) if step > 0 else ([], [1]))
    final_active, final_reactive = drive(phases, events)[-1]
    assert final_active[:2] == (0, 0) and final_reactive[:2] == (0, 0)


def test_steady_import_counts_every_quantum_after_the_phases_worth_held_back():
    events = [([0, 1, 2], [])] * 50 + [([1], [])] * 10
    active, reactive = drive(3, events)[-1]
    assert active == (160 - 2, 0, 2)
    assert reactive == (0, 160 - 2, -2)


def test_one_phase_totals_are_the_phase_counters():
    events = [([0], [])] * 7 + [([], [0])] * 3 + [([0], [])] * 2
    history = drive(1, events)
    counted_import = sum(1 for importing, _ in events if importing)
    assert history[-1][0] == (counted_import, 3, 0)
    assert all(balance == 0 for (_, _, balance), _ in history)


@pytest.mark.parametrize("phases", [0, -1, True, 1.5])
def test_totals_refuse_a_phase_count_that_is_not_a_positive_integer(phases):
    with pytest.raises(ValueError, match="phases"):
        EnergyTotals(phases=phases)
