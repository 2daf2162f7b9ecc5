"""Commissioning end to end on a simulated meter: the control module's agreed keys
provisioned into the gateware, a supplier's signed command checked by the control
module and carried out by the gateware under the supplier's slot key, and a
reading sealed by the meter checked by the supplier with its own side of the
agreement."""

import datetime
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from refmeter.gateware.interlock import DisconnectState, Reason as InterlockReason
from refmeter.gateware.security.authority import Authority
from refmeter.gateware.security.frames import SealKind
from refmeter.sim import verilator
from refmeter.sim.simulators import open_simulation
from refmeter.soft.device import Meter
from refmeter.soft.pki.access import MessageCode
from refmeter.soft.errors import MeterError
from refmeter.soft.pki.agreement import party_keys
from refmeter.soft.pki.control import ControlModule
from refmeter.soft.pki.demo import PARTY_IDENTITIES, DemoPki
from refmeter.soft.pki.errors import Reason, Refused
from refmeter.soft.pki.handlers import GatewareLink
from refmeter.soft.pki.roles import Role, Usage
from refmeter.soft.security import provision, seal_reading
from refmeter.soft.switch import read_switch_status

from pki_helpers import command, commission


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
        gateware = GatewareLink(meter, keys)
        control = ControlModule(state, identity=meter_id, handlers=gateware.handlers(),
                                key_agreement_key=pki.parties[Role.METER, Usage.KEY_AGREEMENT].key,
                                on_keys_changed=gateware.rekey)

        target = 2_000_000_000
        reply = control.handle(command(pki, Role.SUPPLIER, MessageCode.SET_CLOCK, 1,
                                       target.to_bytes(8, "big")).to_bytes())
        assert 0 <= int.from_bytes(reply, "big") - target < 30
        assert int(meter.read("invocation_counter_supplier")) == 1   # the supplier's slot wrote it
        assert len(control.handle(command(pki, Role.NETWORK, MessageCode.READ_ENERGY, 1)
                                  .to_bytes())) == 16
        # The network operator reads voltage quality, but not the household's profile.
        deadline = time.monotonic() + 120
        while int(meter.read("windows_completed")) < 2:
            assert time.monotonic() < deadline, "the meter completed no measurement windows"
        quality = control.handle(command(pki, Role.NETWORK, MessageCode.READ_VOLTAGE_QUALITY, 2)
                                 .to_bytes())
        assert len(quality) == 12
        assert int.from_bytes(quality[0:4], "big") / 1000 == pytest.approx(230, abs=1)
        assert int.from_bytes(quality[4:8], "big") / 1000 in (0, pytest.approx(50, abs=0.1))
        with pytest.raises(Refused) as refusal:
            control.handle(command(pki, Role.NETWORK, MessageCode.READ_LOAD_PROFILE, 3).to_bytes())
        assert refusal.value.reason is Reason.NOT_PERMITTED

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
        meter_certificate = pki.parties[Role.METER, Usage.KEY_AGREEMENT].info
        supplier = pki.parties[Role.SUPPLIER, Usage.KEY_AGREEMENT]
        agreed = party_keys(Role.SUPPLIER, supplier.key, PARTY_IDENTITIES[Role.SUPPLIER],
                            meter_certificate)
        sealed = seal_reading(meter, SealKind.SNAPSHOT)
        sealed.verify(agreed[Authority.READING])
        assert sealed.snapshot["utc_seconds"] >= target

        # A disconnect: the supplier's signature and the broker's MAC become the
        # interlock's two sources; it decides, and says so in the reply. (Its power-up
        # cooldown first: 15 minutes, seconds in a simulation.)
        deadline = time.monotonic() + 60
        while read_switch_status(meter).cooldown_remaining_s and time.monotonic() < deadline:
            time.sleep(0.2)
        reply = control.handle(command(pki, Role.SUPPLIER, MessageCode.DISCONNECT_SUPPLY, 2)
                               .to_bytes())
        assert reply == bytes([1, InterlockReason.DONE.value])
        assert read_switch_status(meter).state is DisconnectState.DISCONNECTED
        assert int(meter.read("invocation_counter_broker")) == 1

        # The supplier replaces its key-agreement key: the gateware's supplier and
        # reading slots move to the keys agreed with the new one, under the old ones.
        new_key = ec.generate_private_key(ec.SECP256R1())
        new = pki.certify(new_key, Role.SUPPLIER, Usage.KEY_AGREEMENT, at=yesterday,
                          until=yesterday + datetime.timedelta(days=30),
                          identity=PARTY_IDENTITIES[Role.SUPPLIER])
        control.handle(command(pki, Role.SUPPLIER, MessageCode.REPLACE_ANCHOR, 3,
                               pki.credentials(new.certificate).to_bytes()).to_bytes())
        assert int(meter.read("invocation_counter_supplier")) == 3   # the key change
        renewed = party_keys(Role.SUPPLIER, new_key, PARTY_IDENTITIES[Role.SUPPLIER],
                             meter_certificate)
        assert renewed[Authority.SUPPLIER] != agreed[Authority.SUPPLIER]
        control.handle(command(pki, Role.SUPPLIER, MessageCode.SET_CLOCK, 4,
                               target.to_bytes(8, "big")).to_bytes())
        assert int(meter.read("invocation_counter_supplier")) == 4
        profile = control.handle(command(pki, Role.SUPPLIER, MessageCode.READ_LOAD_PROFILE, 10)
                                 .to_bytes())
        assert len(profile) == 16 * int(meter.read("profile_head"))   # the ring has not wrapped
        sealed = seal_reading(meter, SealKind.SNAPSHOT)
        sealed.verify(renewed[Authority.READING])
        with pytest.raises(MeterError):
            sealed.verify(agreed[Authority.READING])
