"""The Verilog of the load-switch interlock under cocotb and Verilator: the adversarial
sequences of issue 5 (sim/benches/interlock.py), against relays, a button and an
isolation switch modelled in the bench.

The ``extended`` test runs the bench against each of the proofs' broken variants
(an interlock without one rule) and requires the bench tests of that rule to fail:
a bench that passes a broken interlock proves nothing.
"""

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict
from pathlib import Path

import pytest

from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from refmeter.gateware.interlock import InterlockParameters, LoadSwitchInterlock
from refmeter.sim.benches import run_bench
from test_interlock_formal import (IgnoresIsolation, NoCooldown, OneSourceSuffices,
                                   PriorityFollowsMain, RemoteReconnectConnects,
                                   TrustsEveryRequest)

#: Short times, so a whole cooldown is a few dozen cycles and the bench runs in seconds.
PARAMETERS = InterlockParameters(
    ms_per_second=10, debounce_ms=4, relay_pulse_ms=3, relay_settle_ms=4, cooldown_min_s=3,
    cooldown_max_s=6, two_source_window_s=5, budget_period_s=1000, budget_max=6)
#: Clock cycles per tick_ms: the tick is a one-cycle pulse, as from the real-time clock.
CYCLES_PER_MS = 2
METER_ID = 0x70B3_D5E7_5000_0001
BENCH_TESTS = 24


class FlatPorts(wiring.Component):
    """``component`` with every port at the top under its flattened name
    (``request__payload``, ``main_relay__close``, ...), leaving out the constant
    ``ready`` of always-ready streams: a Verilog top level cannot have a constant port."""

    def __init__(self, component: wiring.Component):
        self._component = component
        self._inner = {"__".join(map(str, path)): (member, value)
                       for path, member, value in component.signature.flatten(component)
                       if not isinstance(value, Const)}
        super().__init__({name: member for name, (member, _) in self._inner.items()})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._component
        for name, (member, inner) in self._inner.items():
            outer = getattr(self, name)
            m.d.comb += inner.eq(outer) if member.flow is wiring.In else outer.eq(inner)
        return m


def run_interlock_bench(interlock: LoadSwitchInterlock, work_dir: Path) -> tuple[int, int]:
    """(tests, failures) of sim/benches/interlock.py on ``interlock``'s Verilog."""
    return run_bench(FlatPorts(interlock), toplevel="interlock", module="interlock",
                     work_dir=work_dir, environment={
                         "REFMETER_INTERLOCK_PARAMETERS": json.dumps(asdict(interlock.parameters)),
                         "REFMETER_CYCLES_PER_MS": str(CYCLES_PER_MS),
                     })


def bench_verdicts(work_dir: Path) -> dict[str, bool]:
    """Each bench test's name (parameters included) and whether it passed, from the
    JUnit results file :func:`run_bench` writes in ``work_dir``."""
    results = ElementTree.parse(work_dir / "results.xml")
    return {case.get("name"): case.find("failure") is None and case.find("error") is None
            for case in results.iter("testcase")}


def test_interlock_adversarial_sequences(tmp_path, verilator_environment):
    """Every bench test in interlock.py passes against the Verilog of the interlock."""
    interlock = LoadSwitchInterlock(meter_id=METER_ID, parameters=PARAMETERS)
    assert run_interlock_bench(interlock, tmp_path) == (BENCH_TESTS, 0)


#: Each rule's broken variant, and the bench tests that exercise the rule.
CATCHERS = [
    (IgnoresIsolation, {"power_up_with_the_isolation_switch_thrown_opens_and_latches",
                        "commands_during_isolation_are_refused_and_nothing_closes",
                        "isolation_cuts_a_closing_pulse_at_once"}),
    (NoCooldown, {"an_on_off_storm_switches_once_per_cooldown_within_the_budget",
                  "commands_during_a_cooldown_are_refused_until_it_ends"}),
    (OneSourceSuffices, {"a_single_source_disconnect_is_refused_logged_and_forgotten",
                         "a_repeated_source_is_not_a_second_source",
                         "requests_with_different_ids_do_not_pair"}),
    # Every test that arms remotely expects ready_for_reconnection.
    (RemoteReconnectConnects, {"replayed_requests_are_refused_and_change_nothing",
                               "an_on_off_storm_switches_once_per_cooldown_within_the_budget",
                               "commands_during_isolation_are_refused_and_nothing_closes"}),
    (PriorityFollowsMain, {"two_sources_in_either_order_disconnect_the_main_circuit_only"}),
    (TrustsEveryRequest, {"replayed_requests_are_refused_and_change_nothing"}),
]


@pytest.mark.extended
@pytest.mark.parametrize("broken, catchers", [pytest.param(*case, id=case[0].__name__)
                                               for case in CATCHERS])
def test_the_bench_catches_an_interlock_without_a_rule(broken, catchers, tmp_path,
                                                       verilator_environment):
    # Under pytest, the cocotb runner exits as soon as it finds a failed bench test.
    with pytest.raises(SystemExit):
        run_interlock_bench(broken(meter_id=METER_ID, parameters=PARAMETERS), tmp_path)
    verdicts = bench_verdicts(tmp_path)
    assert len(verdicts) == BENCH_TESTS
    failed = {name.split("/")[0] for name, passed in verdicts.items() if not passed}
    missed = catchers - failed
    assert not missed, f"{broken.__name__} passed {', '.join(sorted(missed))}"
