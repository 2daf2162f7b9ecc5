"""The Verilog of the load-switch interlock under cocotb and Verilator: the adversarial
sequences of issue 5 (sim/benches/interlock.py), against relays, a button and an
isolation switch modelled in the bench."""

import json
from dataclasses import asdict

from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from refmeter.gateware.interlock import InterlockParameters, LoadSwitchInterlock
from refmeter.sim.benches import run_bench

#: Short times, so a whole cooldown is a few dozen cycles and the bench runs in seconds.
PARAMETERS = InterlockParameters(
    ms_per_second=10, debounce_ms=4, relay_pulse_ms=3, relay_settle_ms=4, cooldown_min_s=3,
    cooldown_max_s=6, two_source_window_s=5, budget_period_s=1000, budget_max=6)
#: Clock cycles per tick_ms: the tick is a one-cycle pulse, as from the real-time clock.
CYCLES_PER_MS = 2
METER_ID = 0x70B3_D5E7_5000_0001


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


def test_interlock_adversarial_sequences(tmp_path, verilator_environment):
    """Every bench test in interlock.py passes against the Verilog of the interlock."""
    interlock = LoadSwitchInterlock(meter_id=METER_ID, parameters=PARAMETERS)
    assert run_bench(FlatPorts(interlock), toplevel="interlock", module="interlock",
                     work_dir=tmp_path, environment={
                         "REFMETER_INTERLOCK_PARAMETERS": json.dumps(asdict(PARAMETERS)),
                         "REFMETER_CYCLES_PER_MS": str(CYCLES_PER_MS),
                     }) == (24, 0)
