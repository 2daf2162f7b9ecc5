"""Commissioning end to end on a simulated meter: the control module's agreed keys
provisioned into the gateware, a supplier's signed command checked by the control
module and carried out by the gateware under the supplier's slot key, and a
reading sealed by the meter checked by the supplier with its own side of the
agreement."""

import datetime

import pytest

from refmeter.gateware.security.authority import Authority
from refmeter.gateware.security.frames import SealKind
from refmeter.sim import verilator
from refmeter.sim.simulators import open_simulation
from refmeter.soft.device import Meter
from refmeter.soft.pki.access import MessageCode
from refmeter.soft.pki.agreement import party_keys
from refmeter.soft.pki.demo import PARTY_IDENTITIES, DemoPki
from refmeter.soft.pki.errors import Reason, Refused
from refmeter.soft.pki.handlers import meter_handlers
from refmeter.soft.pki.roles import Role, Usage
from refmeter.soft.security import provision, seal_reading

from pki_helpers import command, commission, reopen


def test_commissioning_then_signed_commands_reach_the_gateware(tmp_path):
    simulator = "amaranth" if verilator.missing_tools() else "verilator"
    with Meter(open_simulation(simulator, seal_open=True), timeout=10) as meter:
        meter_id = meter.identity().meter_id
        yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
        pki = DemoPki.generate(meter_id, at=yesterday)
        # Commissioning: anchors in the control module, agreed keys into the gateware.
        state = tmp_path / "state"
        keys = commission(pki, state, at=yesterday + datetime.timedelta(hours=1)).keyset()
        provision(meter, keys)
        control = reopen(pki, state, meter_handlers(meter, keys),
                         clock=lambda: datetime.datetime.now(datetime.timezone.utc))

        target = 2_000_000_000
        reply = control.handle(command(pki, Role.SUPPLIER, MessageCode.SET_CLOCK, 1,
                                       target.to_bytes(8, "big")).to_bytes())
        assert 0 <= int.from_bytes(reply, "big") - target < 30
        assert int(meter.read("invocation_counter_supplier")) == 1   # the supplier's slot wrote it
        assert len(control.handle(command(pki, Role.NETWORK, MessageCode.READ_ENERGY, 1)
                                  .to_bytes())) == 16

        # Refused in the control module: the gateware sees nothing.
        for data, reason in [
                (command(pki, Role.SUPPLIER, MessageCode.SET_CLOCK, 1, bytes(8)), Reason.REPLAYED),
                (command(pki, Role.NETWORK, MessageCode.SET_CLOCK, 2, bytes(8)), Reason.NOT_PERMITTED)]:
            with pytest.raises(Refused) as refusal:
                control.handle(data.to_bytes())
            assert refusal.value.reason is reason
        assert int(meter.read("invocation_counter_supplier")) == 1
        assert int(meter.read("invocation_counter_network")) == 0

        # The supplier checks the meter's sealed reading with the key its side agreed.
        supplier = pki.parties[Role.SUPPLIER, Usage.KEY_AGREEMENT]
        reading_key = party_keys(Role.SUPPLIER, supplier.key, PARTY_IDENTITIES[Role.SUPPLIER],
                                 pki.parties[Role.METER, Usage.KEY_AGREEMENT].info)[Authority.READING]
        sealed = seal_reading(meter, SealKind.SNAPSHOT)
        sealed.verify(reading_key)
        assert sealed.snapshot["utc_seconds"] >= target
