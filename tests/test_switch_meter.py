"""The load-switch interlock inside the whole meter, under Verilator, driven through a
socket:// URL as a board would be: what a host can do without the keys (ask, and be
refused and logged), and the two-source disconnect, the cooldown and arming done
with them, through `refmeter switch` and `refmeter.soft.switch`.

The simulated meter runs the interlock's clock a thousand times fast
(`SIM_INTERLOCK`), so cooldowns pass in a few seconds; the relays' pulse and settle
times stay real.
"""

import json
import time

import pytest

from refmeter.gateware.hostlink.protocol import Status
from refmeter.gateware.interlock import Action, DisconnectState, Reason, Target
from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.gateware.security.authority import Authority
from refmeter.gateware.security.frames import system_title
from refmeter.gateware.security.unit import SecurityResult
from refmeter.soft.cli import main
from refmeter.soft.device import Meter
from refmeter.soft.errors import RequestRefused
from refmeter.soft.registers import encode
from refmeter.soft.security import CommandRefused, KeySet, build_command, provision
from refmeter.soft.switch import (InterlockRecord, read_interlock_events, read_switch_status,
                                  request_switch)
from refmeter.soft.transport import SerialTransport

from conftest import require_simulator, served_simulation

SUPPLIER, BROKER, LOCAL = Authority.SUPPLIER, Authority.BROKER, Authority.LOCAL


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory):
    """One Verilator meter, its key slots provisioned with the seal open; (url, key file)."""
    require_simulator("verilator")
    with served_simulation("--simulator", "verilator", "--seal-open") as (_, url):
        keys = KeySet.generate(DEMO_METER_ID)
        with _meter(url) as meter:
            provision(meter, keys)
        key_file = tmp_path_factory.mktemp("keys") / "keys.json"
        keys.save(key_file)
        yield url, keys, key_file


def _meter(url: str) -> Meter:
    return Meter(SerialTransport(url), timeout=5)


def _wait(meter: Meter, done, what: str, timeout_s: float = 60.0):
    """Poll ``interlock_status`` until ``done(status)``."""
    deadline = time.monotonic() + timeout_s
    while not done(status := read_switch_status(meter)):
        assert time.monotonic() < deadline, f"the interlock never got {what}: {status}"
    return status


def _cool(meter: Meter):
    return _wait(meter, lambda status: status.cooldown_remaining_s == 0, "out of its cooldown")


def _last_event(meter: Meter) -> InterlockRecord:
    return read_interlock_events(meter)[-1]


def test_a_host_without_keys_can_ask_but_changes_nothing(provisioned):
    url, keys, _ = provisioned
    with _meter(url) as meter:
        before = read_switch_status(meter)
        assert before.state is DisconnectState.CONNECTED and before.main_closed

        # Writing the request register or the settings as plain frames is refused by
        # the bank: only the security unit's writes are authenticated.
        for register, value in (("interlock_request", {"action": Action.REMOTE_DISCONNECT.value,
                                                       "target": 0, "request_id": 1}),
                                ("interlock_switching", {"cooldown_s": 900, "relay_budget": 1})):
            with pytest.raises(RequestRefused) as refusal:
                meter.write(register, value)
            assert refusal.value.status is Status.UNAUTHENTICATED

        # A command under a key the host made up fails its tag; the interlock logs it
        # as an unverified request of the claimed slot and counter, and refuses it.
        forged = KeySet.generate(DEMO_METER_ID)
        with pytest.raises(CommandRefused) as refusal:
            request_switch(meter, forged, SUPPLIER, Action.REMOTE_DISCONNECT, request_id=1)
        assert refusal.value.result is SecurityResult.BAD_TAG
        event = _last_event(meter)
        assert (event.from_request, event.authenticated, event.accepted) == (True, False, False)
        assert event.reason is Reason.UNAUTHENTICATED and event.authority is SUPPLIER
        assert event.counter == int(meter.read("invocation_counter_supplier")) + 1

        # A genuine command, captured and sent again, is a replay: refused and logged.
        counter = int(meter.read("invocation_counter_network")) + 1
        value = {"action": Action.AUX_REDUCE.value, "target": Target.AUX.value, "request_id": 5}
        frame = build_command(keys.key(Authority.NETWORK), meter_title=system_title(DEMO_METER_ID),
                              authority=Authority.NETWORK, counter=counter,
                              address=meter.register_map.address_of("interlock_request"),
                              value=encode(meter.register_map["interlock_request"], value))
        for attempt in ("genuine", "replayed"):
            done = _commands_done(meter)
            meter.write("command_header", frame.header)
            meter.write("command_value", int.from_bytes(frame.ciphertext, "big"))
            meter.write("command_tag", int.from_bytes(frame.tag, "big"))
            result = _wait_for_result(meter, done)
            event = _last_event(meter)
            assert event.counter == counter and event.authority is Authority.NETWORK
            if attempt == "genuine":
                assert result is SecurityResult.ACCEPTED
                assert event.authenticated and event.reason is Reason.DELAYED
            else:
                assert result is SecurityResult.REPLAYED
                assert not event.authenticated and event.reason is Reason.UNAUTHENTICATED

        after = read_switch_status(meter)
        assert after.state is DisconnectState.CONNECTED and after.main_closed
        assert after.operations == before.operations == 0


def _commands_done(meter: Meter) -> int:
    status = meter.read("security_status")
    return status["commands_accepted"] + status["commands_refused"]


def _wait_for_result(meter: Meter, done_before: int) -> SecurityResult:
    """The security unit's result for the command after ``done_before`` commands."""
    deadline = time.monotonic() + 10
    while _commands_done(meter) == done_before or meter.read("security_status")["busy"]:
        assert time.monotonic() < deadline, "the security unit never finished the command"
    return SecurityResult(meter.read("security_status")["result"])


def test_two_sources_disconnect_and_a_remote_reconnect_only_arms(provisioned, capsys):
    url, keys, key_file = provisioned
    with _meter(url) as meter:
        _cool(meter)
        # One source alone: kept and refused; the same source again: refused.
        first = request_switch(meter, keys, SUPPLIER, Action.REMOTE_DISCONNECT, request_id=7)
        assert (first.accepted, first.reason) == (False, Reason.AWAITING_SECOND_SOURCE)
        again = request_switch(meter, keys, SUPPLIER, Action.REMOTE_DISCONNECT, request_id=7)
        assert again.reason is Reason.SAME_SOURCE
        # The local key may not ask for a remote disconnect.
        local = request_switch(meter, keys, LOCAL, Action.REMOTE_DISCONNECT, request_id=7)
        assert local.reason is Reason.FORBIDDEN
        assert read_switch_status(meter).state is DisconnectState.CONNECTED

    # The broker's agreement, through the command: the supply opens, the priority
    # circuit stays on.
    assert main(["--url", url, "switch", "disconnect", "--authority", "broker", "--id", "7",
                 "--keys", str(key_file), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["accepted"], answer["state"]) == (True, "disconnected")
    with _meter(url) as meter:
        status = _wait(meter, lambda status: not status.main_closed, "its main relay open")
        assert status.priority_closed and status.priority_on and status.cooldown_remaining_s > 0

        # Inside the cooldown, a reconnect is refused; after it, it only arms.
        early = request_switch(meter, keys, BROKER, Action.REMOTE_RECONNECT, request_id=8)
        assert (early.accepted, early.reason) == (False, Reason.COOLDOWN)
        _cool(meter)
    assert main(["--url", url, "switch", "arm", "--authority", "supplier", "--id", "9",
                 "--keys", str(key_file)]) == 0
    assert "ready_for_reconnection" in capsys.readouterr().out
    with _meter(url) as meter:
        status = read_switch_status(meter)
        assert status.state is DisconnectState.READY_FOR_RECONNECTION and not status.main_closed

    # The log tells the story, oldest first.
    assert main(["--url", url, "switch", "log", "--json"]) == 0
    answers = [event for event in json.loads(capsys.readouterr().out)["events"]
               if event["from_request"] and event["action"] == "remote_disconnect"
               and event["request_id"] == 7]
    assert [(event["authority"], event["reason"]) for event in answers][-4:] == [
        ("supplier", "awaiting_second_source"), ("supplier", "same_source"),
        ("local", "forbidden"), ("broker", "done")]


def test_switch_requests_need_keys(provisioned, capsys):
    url, _, _ = provisioned
    assert main(["--url", url, "switch", "disconnect"]) == 2
    assert "give --keys" in capsys.readouterr().err
