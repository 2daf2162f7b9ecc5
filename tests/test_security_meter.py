"""The whole meter's security path under Verilator, driven by the `refmeter` command
through a socket:// URL as a board would be: keys provisioned with the seal open,
the clock set by an authenticated command, readings sealed and checked, and what a
hostile host might try refused."""

import datetime
import json

import pytest

from refmeter.gateware.hostlink.protocol import Status
from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.gateware.security.authority import Authority
from refmeter.gateware.security.frames import SealKind
from refmeter.gateware.security.unit import SecurityResult
from refmeter.soft.cli import main
from refmeter.soft.device import Meter, format_eui64
from refmeter.soft.errors import RequestRefused
from refmeter.soft.security import CommandRefused, KeySet, provision, seal_reading, send_command
from refmeter.sim.simulators import open_simulation, simulated_meter
from refmeter.soft.errors import MeterError
from refmeter.soft.transport import SerialTransport

from conftest import require_simulator, served_simulation


@pytest.fixture(scope="module")
def sealed_open_meter():
    """One Verilator meter with its seal open, served on TCP, for the module's tests."""
    require_simulator("verilator")
    with served_simulation("--simulator", "verilator", "--seal-open") as (_, url):
        yield url


def _meter(url: str) -> Meter:
    return Meter(SerialTransport(url), timeout=5)


def test_provision_set_clock_and_seal_through_the_command(sealed_open_meter, tmp_path,
                                                          monkeypatch, capsys):
    url = sealed_open_meter
    monkeypatch.chdir(tmp_path)
    assert main(["--url", url, "keys", "provision"]) == 0
    key_file = tmp_path / f"keys-{format_eui64(DEMO_METER_ID)}.json"
    keys = KeySet.load(key_file)
    assert keys.meter_id == DEMO_METER_ID and set(keys.keys) == set(Authority)
    # A second provisioning never overwrites the keys it would lose.
    assert main(["--url", url, "keys", "provision"]) == 2
    assert "exists" in capsys.readouterr().err

    # The clock: a plain write is refused, an authenticated one sets it.
    with _meter(url) as meter:
        with pytest.raises(RequestRefused) as refusal:
            meter.write("utc_set", 1_000_000_000)
        assert refusal.value.status is Status.UNAUTHENTICATED
    target = "2031-05-17T08:30:00+00:00"
    assert main(["--url", url, "set-clock", "--utc", target, "--keys", str(key_file)]) == 0
    with _meter(url) as meter:
        now = meter.utc_time()
        assert datetime.timedelta(0) <= now - datetime.datetime.fromisoformat(target) \
            < datetime.timedelta(seconds=30)
        assert int(meter.read("invocation_counter_local")) == 1

    # A snapshot, sealed by the gateware and checked by the command with the reading key.
    capsys.readouterr()
    assert main(["--url", url, "seal", "--snapshot", "--keys", str(key_file), "--json"]) == 0
    sealed = json.loads(capsys.readouterr().out)
    assert sealed["verified"] and sealed["kind"] == "snapshot" and sealed["counter"] >= 1
    assert sealed["utc_seconds"] >= int(datetime.datetime.fromisoformat(target).timestamp())

    # Someone else's keys do not verify the meter's seal.
    other = tmp_path / "other.json"
    KeySet.generate(DEMO_METER_ID).save(other)
    assert main(["--url", url, "seal", "--snapshot", "--keys", str(other)]) == 1
    assert "does not verify" in capsys.readouterr().err


def test_hostile_host_gets_nothing(sealed_open_meter, tmp_path):
    """Replays, a command for the wrong authority and a forged key are refused by the
    gateware with a reason, and count; key registers cannot be read."""
    url = sealed_open_meter
    with _meter(url) as meter:
        keys = KeySet.generate(DEMO_METER_ID)
        provision(meter, keys)
        counter = send_command(meter, keys, Authority.SUPPLIER, "utc_set", 1_900_000_000)
        with pytest.raises(CommandRefused) as refused:
            send_command(meter, keys, Authority.SUPPLIER, "utc_set", 1_900_000_000,
                         counter=counter)
        assert refused.value.result is SecurityResult.REPLAYED
        with pytest.raises(CommandRefused, match="FORBIDDEN"):
            send_command(meter, keys, Authority.NETWORK, "utc_set", 1_900_000_000)
        forged = KeySet(DEMO_METER_ID, {Authority.SUPPLIER: bytes(16)})
        with pytest.raises(CommandRefused) as refused:
            send_command(meter, forged, Authority.SUPPLIER, "utc_set", 1)
        assert refused.value.result is SecurityResult.BAD_TAG
        for authority in Authority:
            with pytest.raises(RequestRefused) as refusal:
                meter.read(f"key_{authority.slot_name}")
            assert refusal.value.status is Status.WRITE_ONLY
        before = meter.read("active_import_wh_total")
        reading = seal_reading(meter, SealKind.SNAPSHOT)
        reading.verify(keys.key(Authority.READING))
        assert reading.snapshot["utc_seconds"] >= 1_900_000_000
        # The snapshot holds the total energy registers (230 V, 5 A: a Wh in 3 s).
        assert before <= reading.snapshot["active_import_wh"] <= meter.read("active_import_wh_total")
        assert reading.snapshot["active_export_wh"] == meter.read("active_export_wh_total") == 0


def test_a_meter_without_the_unit_says_so_and_refuses_what_needs_it():
    """A bitstream built without the security unit (the UP5K's, for now) reports
    NO_ENGINE; the host says so instead of waiting, and the clock cannot be set."""
    with Meter(open_simulation("amaranth", simulated_meter(security=False), seal_open=True),
               timeout=5) as meter:
        assert SecurityResult(meter.read("security_status")["result"]) is SecurityResult.NO_ENGINE
        keys = KeySet.generate(DEMO_METER_ID)
        with pytest.raises(MeterError, match="no security unit"):
            provision(meter, keys)
        with pytest.raises(MeterError, match="no security unit"):
            send_command(meter, keys, Authority.LOCAL, "utc_set", 1)
        with pytest.raises(RequestRefused) as refusal:
            meter.write("utc_set", 1)
        assert refusal.value.status is Status.UNAUTHENTICATED
