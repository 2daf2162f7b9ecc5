# amaranth: UnusedElaboratable=no
"""The load-switch interlock (gateware/interlock) in simulation, under the sequences an
attacker, a faulty relay or a person at the meter would produce: replayed, reordered
and unauthenticated requests, single-source disconnects, on/off storms, commands
during cooldown and isolation, button bounce, relay feedback faults, and power-up in
each sensed state.

``tick_ms`` is high in every cycle, so a millisecond is a clock cycle and an
interlock second is ``SIM.ms_per_second`` cycles. The relays are modelled as latching
relays whose contacts follow their coils, unless a test jams them.
"""

import random

import pytest

from amaranth.hdl import Module
from amaranth.lib import wiring
from gateware_helpers import run_simulation, ticks
from refmeter.gateware.interlock import (Action, AuxLevel, DisconnectState, InterlockLog,
                                         InterlockParameters, LoadSwitchInterlock, Reason, Target)
from refmeter.gateware.interlock.auxload import FRACTION_BITS, aux_delay_fraction
from refmeter.gateware.interlock.relay import LatchingRelayDriver
from refmeter.gateware.registers import RegisterBank, RegisterMap, connect_registers
from refmeter.gateware.security.authority import Authority

SIM = InterlockParameters(
    ms_per_second=4, debounce_ms=3, relay_pulse_ms=2, relay_settle_ms=3, cooldown_min_s=3,
    cooldown_max_s=6, two_source_window_s=5, budget_period_s=200, budget_max=6,
    priority_sustain_s=3, limiter_floor_w=1000, aux_override_s=5)
METER_ID = 0x70B3_D5E7_5000_0001

SUPPLIER, BROKER, NETWORK, LOCAL = (Authority.SUPPLIER, Authority.BROKER, Authority.NETWORK,
                                    Authority.LOCAL)
CONNECTED = DisconnectState.CONNECTED
DISCONNECTED = DisconnectState.DISCONNECTED
READY = DisconnectState.READY_FOR_RECONNECTION


class Bench:
    """An interlock between latching relays that follow their coils and a log of every
    event, with helpers that act as the security unit and as a person at the meter."""

    def __init__(self, *, main_closed=True, priority_closed=True, isolate=False,
                 meter_id=METER_ID, parameters=SIM):
        self.dut = LoadSwitchInterlock(meter_id=meter_id, parameters=parameters)
        self.parameters = parameters
        self.initial = {"main": main_closed, "priority": priority_closed}
        self.isolate = isolate
        self.events = []        # every event, in order
        self.pulses = {"main": [], "priority": []}  # (coil, cycles) of each coil pulse
        self.jammed = {"main": None, "priority": None}  # contacts stuck at this position
        self.counter = 0

    def relay(self, name):
        return getattr(self.dut, f"{name}_relay")

    def run(self, scenario):
        dut = self.dut

        async def testbench(ctx):
            ctx.set(dut.tick_ms, 1)
            ctx.set(dut.isolate, self.isolate)
            await scenario(ctx)

        async def world(ctx):
            # The relays' contacts, and every event and coil pulse, checked as they come.
            closed = dict(self.initial)
            pulse = {"main": None, "priority": None}
            for name in closed:
                ctx.set(self.relay(name).closed, closed[name])
            while True:
                await ctx.tick()
                if ctx.get(dut.event.valid):
                    self.events.append(ctx.get(dut.event.payload))
                held = ctx.get(dut.isolate) or ctx.get(dut.interlock_status.isolated)
                for name in closed:
                    relay = self.relay(name)
                    close, open_ = ctx.get(relay.close), ctx.get(relay.open)
                    assert not (close and open_), "both coils driven"
                    assert not (close and held), "a relay closes while isolated"
                    coil = "close" if close else "open" if open_ else None
                    if coil:
                        closed[name] = coil == "close"
                    if pulse[name] and pulse[name][0] == coil:
                        pulse[name][1] += 1
                    else:
                        if pulse[name]:
                            self.pulses[name].append(tuple(pulse[name]))
                        pulse[name] = [coil, 1] if coil else None
                    jammed = self.jammed[name]
                    ctx.set(relay.closed, closed[name] if jammed is None else jammed)

        run_simulation(dut, testbench, background=[world])

    # --- Acting on it --------------------------------------------------------------

    async def ask(self, ctx, authority, action, *, target=Target.MAIN, request_id=1,
                  authenticated=True):
        """Hand over one request; its answer (the event of the next cycle)."""
        self.counter += 1
        ctx.set(self.dut.request.payload, {
            "authority": authority, "authenticated": authenticated, "action": action,
            "target": target, "request_id": request_id, "counter": self.counter})
        ctx.set(self.dut.request.valid, 1)
        await ctx.tick()
        ctx.set(self.dut.request.valid, 0)
        assert ctx.get(self.dut.event.valid)
        answer = ctx.get(self.dut.event.payload)
        assert answer.from_request and answer.counter == self.counter and answer.action == action
        return answer

    async def disconnect(self, ctx, request_id=1):
        """The supplier, then the broker, ask for the same remote disconnect; both answers."""
        return (await self.ask(ctx, SUPPLIER, Action.REMOTE_DISCONNECT, request_id=request_id),
                await self.ask(ctx, BROKER, Action.REMOTE_DISCONNECT, request_id=request_id))

    async def seconds(self, ctx, count):
        await ticks(ctx, count * self.parameters.ms_per_second)

    async def until_cool(self, ctx):
        """Wait for the cooldown to end."""
        while ctx.get(self.dut.interlock_status.cooldown_remaining_s):
            await ctx.tick()

    async def press(self, ctx, signal, *, hold_ms=6, bounce=(1, 1, 1, 1)):
        """Press and release a contact: bounces (alternate closed/open stretches, ms)
        on the way in and out, ``hold_ms`` held in between."""
        for level, stretch in [(i % 2 == 0, ms) for i, ms in enumerate(bounce)]:
            ctx.set(signal, level)
            await ticks(ctx, stretch)
        ctx.set(signal, 1)
        await ticks(ctx, hold_ms)
        for level, stretch in [(i % 2 == 0, ms) for i, ms in enumerate(bounce)]:
            ctx.set(signal, not level)
            await ticks(ctx, stretch)
        ctx.set(signal, 0)
        await ticks(ctx, self.parameters.debounce_ms + 2)

    def state(self, ctx):
        return ctx.get(self.dut.state)

    def status(self, ctx):
        return ctx.get(self.dut.interlock_status)

    def happenings(self, action):
        return [event for event in self.events if event.action == action and not event.from_request]


async def settle(bench, ctx):
    """Let the relays finish moving (pulse and rest, with margin)."""
    await ticks(ctx, bench.parameters.relay_pulse_ms + bench.parameters.relay_settle_ms + 4)


# --- Power-up ------------------------------------------------------------------------

@pytest.mark.parametrize("main_closed", [True, False])
@pytest.mark.parametrize("priority_closed", [True, False])
def test_power_up_adopts_the_sensed_relays_and_starts_a_cooldown(main_closed, priority_closed):
    bench = Bench(main_closed=main_closed, priority_closed=priority_closed)

    async def scenario(ctx):
        await ticks(ctx, SIM.cooldown_min_s * SIM.ms_per_second - 2)
        assert bench.state(ctx) == (CONNECTED if main_closed else DISCONNECTED)
        assert bench.status(ctx).priority_on == priority_closed
        # Nothing switched by itself, and remote switching waits for the cooldown.
        assert bench.pulses == {"main": [], "priority": []}
        assert not ctx.get(bench.dut.relay_alarm)
        action = Action.REMOTE_DISCONNECT if main_closed else Action.REMOTE_RECONNECT
        assert (await bench.ask(ctx, SUPPLIER, action)).reason == Reason.COOLDOWN
        await ticks(ctx, 50)
        assert bench.pulses == {"main": [], "priority": []}

    bench.run(scenario)
    assert [event.action for event in bench.events][:1] == [Action.POWER_UP]


def test_power_up_with_the_isolation_switch_thrown_opens_and_latches():
    bench = Bench(main_closed=True, priority_closed=True, isolate=True)

    async def scenario(ctx):
        await settle(bench, ctx)
        assert bench.state(ctx) == DISCONNECTED and bench.status(ctx).isolated
        assert [coil for coil, _ in bench.pulses["main"]] == ["open"]
        assert [coil for coil, _ in bench.pulses["priority"]] == ["open"]

    bench.run(scenario)


# --- Disconnect control: two sources, arming, the button ------------------------------

def test_remote_disconnect_needs_both_sources_with_the_same_request():
    bench = Bench()

    async def scenario(ctx):
        await bench.until_cool(ctx)
        first = await bench.ask(ctx, SUPPLIER, Action.REMOTE_DISCONNECT, request_id=7)
        assert (first.accepted, first.reason) == (0, Reason.AWAITING_SECOND_SOURCE)
        assert bench.status(ctx).pending_supplier
        # The same source again, or the other with another request id: still refused.
        again = await bench.ask(ctx, SUPPLIER, Action.REMOTE_DISCONNECT, request_id=7)
        other_id = await bench.ask(ctx, BROKER, Action.REMOTE_DISCONNECT, request_id=8)
        assert again.reason == Reason.SAME_SOURCE
        assert other_id.reason == Reason.AWAITING_SECOND_SOURCE
        # Neither the network operator nor the meter's own key is a second source.
        for authority in (NETWORK, LOCAL, Authority.READING):
            answer = await bench.ask(ctx, authority, Action.REMOTE_DISCONNECT, request_id=7)
            assert answer.reason == Reason.FORBIDDEN
        await settle(bench, ctx)
        assert bench.state(ctx) == CONNECTED and bench.pulses["main"] == []
        # Reordered: the broker's request names the supplier's id; either may come first.
        done = await bench.ask(ctx, BROKER, Action.REMOTE_DISCONNECT, request_id=7)
        assert (done.accepted, done.reason, done.state) == (1, Reason.DONE, DISCONNECTED)
        await settle(bench, ctx)
        assert [coil for coil, _ in bench.pulses["main"]] == ["open"]
        status = bench.status(ctx)
        assert not status.main_closed and not (status.pending_supplier or status.pending_broker)
        # The priority circuit stays on.
        assert status.priority_on and status.priority_closed and bench.pulses["priority"] == []

    bench.run(scenario)


def test_a_first_source_expires_after_the_window():
    bench = Bench()

    async def scenario(ctx):
        await bench.until_cool(ctx)
        await bench.ask(ctx, SUPPLIER, Action.REMOTE_DISCONNECT, request_id=3)
        await bench.seconds(ctx, SIM.two_source_window_s + 2)
        assert not bench.status(ctx).pending_supplier
        late = await bench.ask(ctx, BROKER, Action.REMOTE_DISCONNECT, request_id=3)
        assert late.reason == Reason.AWAITING_SECOND_SOURCE and bench.state(ctx) == CONNECTED

    bench.run(scenario)


def test_remote_disconnect_never_targets_the_priority_circuit():
    bench = Bench()

    async def scenario(ctx):
        await bench.until_cool(ctx)
        for authority in (SUPPLIER, BROKER):
            answer = await bench.ask(ctx, authority, Action.REMOTE_DISCONNECT,
                                     target=Target.PRIORITY, request_id=4)
            assert answer.reason == Reason.PRIORITY_PROTECTED
        await settle(bench, ctx)
        assert bench.status(ctx).priority_closed and bench.pulses["priority"] == []

    bench.run(scenario)


def test_remote_reconnect_only_arms_and_the_button_completes_it():
    bench = Bench(main_closed=False)

    async def scenario(ctx):
        await bench.until_cool(ctx)
        armed = await bench.ask(ctx, SUPPLIER, Action.REMOTE_RECONNECT)
        assert (armed.reason, armed.state) == (Reason.DONE, READY)
        # Arming twice, or asking again, does not connect.
        await bench.until_cool(ctx)
        assert (await bench.ask(ctx, BROKER, Action.REMOTE_RECONNECT)).reason == Reason.WRONG_STATE
        await settle(bench, ctx)
        assert bench.state(ctx) == READY and bench.pulses["main"] == []
        await bench.press(ctx, bench.dut.button)
        await settle(bench, ctx)
        assert bench.state(ctx) == CONNECTED and bench.status(ctx).main_closed
        close_pulses = [cycles for coil, cycles in bench.pulses["main"] if coil == "close"]
        assert len(close_pulses) == 1 and close_pulses[0] >= SIM.relay_pulse_ms

    bench.run(scenario)
    (reconnect,) = bench.happenings(Action.MANUAL_RECONNECT)
    assert (reconnect.reason, reconnect.target, reconnect.state) == (Reason.DONE, Target.MAIN,
                                                                     CONNECTED)


def test_local_disconnect_goes_to_ready_without_cooldown_and_only_from_the_local_key():
    bench = Bench()

    async def scenario(ctx):
        assert bench.status(ctx).cooldown_remaining_s  # power-up cooldown running
        assert (await bench.ask(ctx, SUPPLIER, Action.LOCAL_DISCONNECT)).reason == Reason.FORBIDDEN
        answer = await bench.ask(ctx, LOCAL, Action.LOCAL_DISCONNECT)
        assert (answer.reason, answer.state) == (Reason.DONE, READY)
        await bench.press(ctx, bench.dut.button)
        assert bench.state(ctx) == CONNECTED

    bench.run(scenario)


# --- Adversarial request sequences ------------------------------------------------------

@pytest.mark.parametrize("action", [Action.REMOTE_DISCONNECT, Action.REMOTE_RECONNECT,
                                    Action.LOCAL_DISCONNECT, Action.AUX_OFF])
def test_unauthenticated_requests_change_nothing(action):
    # Replayed or forged commands reach the interlock unauthenticated (the security unit
    # refuses a bad tag or a stale counter): even a complete pair does nothing.
    bench = Bench(main_closed=action != Action.REMOTE_RECONNECT)

    async def scenario(ctx):
        await bench.until_cool(ctx)
        before = bench.status(ctx)
        authorities = {Action.LOCAL_DISCONNECT: [LOCAL], Action.AUX_OFF: [NETWORK]}.get(
            action, [SUPPLIER, BROKER])
        target = Target.AUX if action == Action.AUX_OFF else Target.MAIN
        for authority in authorities:
            answer = await bench.ask(ctx, authority, action, target=target, authenticated=False)
            assert (answer.accepted, answer.reason) == (0, Reason.UNAUTHENTICATED)
        await settle(bench, ctx)
        assert bench.status(ctx) == before

    bench.run(scenario)


def test_a_replayed_disconnect_pair_after_reconnection_waits_out_the_cooldown():
    bench = Bench()

    async def scenario(ctx):
        await bench.until_cool(ctx)
        await bench.disconnect(ctx, request_id=9)
        await bench.until_cool(ctx)
        await bench.ask(ctx, SUPPLIER, Action.REMOTE_RECONNECT)
        await bench.press(ctx, bench.dut.button)
        assert bench.state(ctx) == CONNECTED
        # The same pair again, at once (had the security unit let it through): refused.
        first, second = await bench.disconnect(ctx, request_id=9)
        assert first.reason == second.reason == Reason.COOLDOWN
        assert bench.state(ctx) == CONNECTED

    bench.run(scenario)


def test_an_on_off_storm_switches_at_most_once_per_cooldown():
    bench = Bench()
    storm_s = 40

    async def scenario(ctx):
        # Both compromised remote keys, every cycle: disconnect pairs and reconnects.
        for index in range(storm_s * SIM.ms_per_second // 3):
            await bench.disconnect(ctx, request_id=index)
            await bench.ask(ctx, SUPPLIER, Action.REMOTE_RECONNECT)

    bench.run(scenario)
    changes = [event for event in bench.events if event.from_request and event.accepted]
    assert 0 < len(changes) <= storm_s // SIM.cooldown_min_s + 1
    # Remote requests alone never reconnect: the storm leaves the supply off or armed.
    assert all(event.state != CONNECTED for event in changes)
    assert len(bench.pulses["main"]) == 1


@pytest.mark.parametrize("setting, expected", [(0, SIM.cooldown_min_s), (4, 4),
                                               (60_000, SIM.cooldown_max_s)])
def test_the_cooldown_setting_is_clamped_to_its_range(setting, expected):
    bench = Bench(main_closed=False)

    async def scenario(ctx):
        ctx.set(bench.dut.interlock_switching.cooldown_s, setting)
        await bench.until_cool(ctx)
        await bench.ask(ctx, SUPPLIER, Action.REMOTE_RECONNECT)
        assert bench.status(ctx).cooldown_remaining_s == expected

    bench.run(scenario)


# --- Isolation -------------------------------------------------------------------------

def test_isolation_opens_at_once_refuses_everything_and_releases_to_disconnected():
    bench = Bench()

    async def scenario(ctx):
        await bench.until_cool(ctx)
        ctx.set(bench.dut.isolate, 1)
        await ctx.tick()
        await ctx.tick()
        assert ctx.get(bench.dut.main_relay.open) and ctx.get(bench.dut.priority_relay.open)
        await settle(bench, ctx)
        assert bench.state(ctx) == DISCONNECTED and bench.status(ctx).isolated
        await bench.until_cool(ctx)
        assert (await bench.ask(ctx, SUPPLIER, Action.REMOTE_RECONNECT)).reason == Reason.ISOLATED
        await bench.press(ctx, bench.dut.button)
        # A bouncing release shorter than the debounce time does not release.
        for _ in range(4):
            ctx.set(bench.dut.isolate, 0)
            await ticks(ctx, SIM.debounce_ms - 1)
            ctx.set(bench.dut.isolate, 1)
            await ctx.tick()
        assert bench.status(ctx).isolated
        ctx.set(bench.dut.isolate, 0)
        await ticks(ctx, SIM.debounce_ms + 3)
        assert not bench.status(ctx).isolated and bench.state(ctx) == DISCONNECTED
        assert not bench.status(ctx).priority_on  # the button brings it back

    bench.run(scenario)
    (press,) = bench.happenings(Action.MANUAL_RECONNECT)
    assert press.reason == Reason.ISOLATED
    assert len(bench.happenings(Action.ISOLATE)) == 1
    assert len(bench.happenings(Action.ISOLATION_RELEASED)) == 1
    assert all(coil == "open" for name in bench.pulses for coil, _ in bench.pulses[name])


# --- Buttons and relays ----------------------------------------------------------------

def test_button_bounce_shorter_than_the_debounce_time_is_no_press():
    bench = Bench()

    async def scenario(ctx):
        await bench.ask(ctx, LOCAL, Action.LOCAL_DISCONNECT)
        for _ in range(10):  # contact chatter, never stable for the debounce time
            ctx.set(bench.dut.button, 1)
            await ticks(ctx, SIM.debounce_ms - 1)
            ctx.set(bench.dut.button, 0)
            await ctx.tick()
        await settle(bench, ctx)
        assert bench.state(ctx) == READY
        await bench.press(ctx, bench.dut.button, bounce=(1, 2, 1, 1, 2, 1))
        assert bench.state(ctx) == CONNECTED

    bench.run(scenario)
    assert len(bench.happenings(Action.MANUAL_RECONNECT)) == 1


@pytest.mark.parametrize("jam, reason", [(1, Reason.CONTACTS_WELDED),
                                         (0, Reason.CONTACTS_MISMATCH)])
def test_contacts_that_disagree_with_the_relay_raise_an_alarm(jam, reason):
    bench = Bench(main_closed=not jam)

    async def scenario(ctx):
        await bench.until_cool(ctx)
        bench.jammed["main"] = jam
        if jam:  # welded: the contacts do not part on disconnect
            await bench.disconnect(ctx)
        else:    # the contacts open by themselves (or are bypassed) while connected
            await ctx.tick()
        await settle(bench, ctx)
        assert ctx.get(bench.dut.relay_alarm) and bench.status(ctx).main_fault
        assert bench.status(ctx).main_welded == jam

    bench.run(scenario)
    (fault,) = bench.happenings(Action.RELAY_FAULT)
    assert (fault.target, fault.reason) == (Target.MAIN, reason)


def test_the_switching_budget_stops_closings_not_openings():
    bench = Bench()
    budget = 4

    async def scenario(ctx):
        ctx.set(bench.dut.interlock_switching.relay_budget, budget)
        for _ in range(budget // 2 + 1):
            answer = await bench.ask(ctx, LOCAL, Action.LOCAL_DISCONNECT)
            assert answer.reason == Reason.DONE
            await settle(bench, ctx)
            await bench.press(ctx, bench.dut.button)
            await settle(bench, ctx)
        assert bench.state(ctx) == READY and not bench.status(ctx).main_closed
        assert bench.status(ctx).operations == budget + 1
        await bench.seconds(ctx, SIM.budget_period_s)  # a new day
        await bench.press(ctx, bench.dut.button)
        assert bench.state(ctx) == CONNECTED

    bench.run(scenario)
    refusals = [event.reason for event in bench.happenings(Action.MANUAL_RECONNECT)
                if not event.accepted]
    assert refusals == [Reason.BUDGET_SPENT]


def test_relay_pulses_and_rests_keep_their_minimum_under_a_demand_storm():
    driver = LatchingRelayDriver(pulse_ms=3, settle_ms=5)
    rng = random.Random(5)
    coils = []  # per cycle: "close", "open" or None

    async def testbench(ctx):
        ctx.set(driver.tick_ms, 1)
        closed = 0
        for _ in range(3000):
            if rng.random() < 0.3:
                ctx.set(driver.closed_wanted, rng.getrandbits(1))
            await ctx.tick()
            close, open_ = ctx.get(driver.relay.close), ctx.get(driver.relay.open)
            coils.append("close" if close else "open" if open_ else None)
            closed = 1 if close else 0 if open_ else closed
            ctx.set(driver.relay.closed, closed)
            assert not ctx.get(driver.mismatch)

    run_simulation(driver, testbench)
    runs = []  # (coil, cycles)
    for coil in coils:
        if runs and runs[-1][0] == coil:
            runs[-1][1] += 1
        else:
            runs.append([coil, 1])
    pulses = [run for run in runs if run[0]]
    assert len(pulses) > 100
    for index, ((coil, cycles), (next_coil, _)) in enumerate(zip(runs, runs[1:])):
        if coil is None:
            assert index == 0 or cycles >= 5        # the rest after a pulse
        elif next_coil is None:
            assert cycles >= 3                      # a whole pulse
        else:
            assert (coil, next_coil) == ("close", "open")  # only an opening cuts one short


# --- Priority circuit and limiter --------------------------------------------------------

async def measure(ctx, stream, value, seconds, bench):
    """One measurement per interlock second, for ``seconds`` seconds."""
    for _ in range(seconds):
        ctx.set(stream.payload, value)
        ctx.set(stream.valid, 1)
        await ctx.tick()
        ctx.set(stream.valid, 0)
        await ticks(ctx, bench.parameters.ms_per_second - 1)


def test_the_priority_circuit_trips_only_on_sustained_overcurrent():
    bench = Bench()

    async def scenario(ctx):
        current = bench.dut.priority_current
        for _ in range(3):  # overcurrent bursts shorter than the sustain time
            await measure(ctx, current, 15_000, SIM.priority_sustain_s - 1, bench)
            await measure(ctx, current, 9_000, 1, bench)
        assert bench.status(ctx).priority_on
        await measure(ctx, current, 10_001, SIM.priority_sustain_s + 2, bench)
        await settle(bench, ctx)
        status = bench.status(ctx)
        assert not status.priority_on and not status.priority_closed
        assert bench.state(ctx) == CONNECTED and status.main_closed
        await measure(ctx, current, 0, 2, bench)
        await bench.press(ctx, bench.dut.button)
        await settle(bench, ctx)
        assert bench.status(ctx).priority_closed

    bench.run(scenario)
    (trip,) = bench.happenings(Action.PRIORITY_TRIP)
    assert trip.target == Target.PRIORITY
    (reclose,) = bench.happenings(Action.MANUAL_RECONNECT)
    assert (reclose.target, reclose.reason) == (Target.PRIORITY, Reason.DONE)


def test_the_limiter_trips_on_sustained_excess_to_ready_for_reconnection():
    bench = Bench()

    async def scenario(ctx):
        ctx.set(bench.dut.interlock_limiter, {"threshold_normal_w": 5000, "min_over_s": 3,
                                              "min_under_s": 2})
        await measure(ctx, bench.dut.active_power, 9000, 3, bench)  # a peak: no trip
        await measure(ctx, bench.dut.active_power, 4000, 1, bench)
        assert bench.state(ctx) == CONNECTED
        await measure(ctx, bench.dut.active_power, 5001, 5, bench)
        assert bench.state(ctx) == READY and bench.status(ctx).limiter_over
        await measure(ctx, bench.dut.active_power, 0, 4, bench)  # disconnected: no load
        assert not bench.status(ctx).limiter_over
        await bench.press(ctx, bench.dut.button)
        assert bench.state(ctx) == CONNECTED

    bench.run(scenario)
    assert len(bench.happenings(Action.LIMITER_TRIP)) == 1


def test_the_emergency_profile_lowers_the_threshold_but_never_below_the_floor():
    bench = Bench()

    async def scenario(ctx):
        ctx.set(bench.dut.utc_seconds, 1_000)
        ctx.set(bench.dut.interlock_limiter, {"threshold_normal_w": 8000, "min_over_s": 1,
                                              "min_under_s": 1})
        ctx.set(bench.dut.interlock_emergency, {"threshold_emergency_w": 0,
                                                "activation_s": 1_010, "duration_s": 20})
        await measure(ctx, bench.dut.active_power, 900, 3, bench)
        assert not bench.status(ctx).emergency_active
        ctx.set(bench.dut.utc_seconds, 1_015)
        await measure(ctx, bench.dut.active_power, 999, 4, bench)  # under the 1 kW floor
        assert bench.status(ctx).emergency_active and bench.state(ctx) == CONNECTED
        await measure(ctx, bench.dut.active_power, 1500, 4, bench)
        assert bench.state(ctx) == READY

    bench.run(scenario)


# --- Auxiliary load ------------------------------------------------------------------------

def aux_delay_s(meter_id, window_s):
    return aux_delay_fraction(meter_id) * window_s >> FRACTION_BITS


#: Two meters whose delays in a 20 s window differ (6 s and 1 s).
AUX_METERS = (METER_ID, METER_ID + 1)


def test_aux_delays_spread_a_fleet_over_the_window():
    delays = [aux_delay_s(meter_id, 1800) for meter_id in range(METER_ID, METER_ID + 200)]
    assert len(set(delays)) > 150 and min(delays) < 300 and max(delays) > 1500
    assert len({aux_delay_s(meter_id, 20) for meter_id in AUX_METERS}) == 2


@pytest.mark.parametrize("meter_id", AUX_METERS)
def test_aux_requests_wait_for_the_meters_delay_and_the_override_wins_for_a_while(meter_id):
    window_s = 20
    bench = Bench(meter_id=meter_id)
    delay_s = aux_delay_s(meter_id, window_s)

    async def scenario(ctx):
        ctx.set(bench.dut.interlock_aux.delay_window_s, window_s)
        forbidden = await bench.ask(ctx, BROKER, Action.AUX_OFF, target=Target.AUX)
        assert forbidden.reason == Reason.FORBIDDEN
        wrong_target = await bench.ask(ctx, NETWORK, Action.AUX_OFF, target=Target.MAIN)
        assert wrong_target.reason == Reason.BAD_REQUEST
        answer = await bench.ask(ctx, NETWORK, Action.AUX_OFF, target=Target.AUX)
        assert (answer.accepted, answer.reason) == (1, Reason.DELAYED)
        waited = 0
        while ctx.get(bench.dut.aux_level) == AuxLevel.FULL:
            await ctx.tick()
            waited += 1
        # Whole interlock seconds: the first may be cut short by the request's arrival.
        assert (delay_s - 1) * SIM.ms_per_second < waited <= delay_s * SIM.ms_per_second + 1
        await bench.press(ctx, bench.dut.aux_override_button)
        assert ctx.get(bench.dut.aux_level) == AuxLevel.FULL and bench.status(ctx).aux_overridden
        await bench.seconds(ctx, SIM.aux_override_s + 1)
        assert ctx.get(bench.dut.aux_level) == AuxLevel.OFF

    bench.run(scenario)
    (override,) = bench.happenings(Action.AUX_OVERRIDE)
    assert override.target == Target.AUX


# --- The log -----------------------------------------------------------------------------

def test_the_log_keeps_the_latest_events_for_the_host():
    interlock = LoadSwitchInterlock(meter_id=METER_ID, parameters=SIM)
    log = InterlockLog(capacity=4)
    top = Module()
    top.submodules.interlock, top.submodules.log = interlock, log
    wiring.connect(top, interlock.event, log.events)
    sent = []

    async def testbench(ctx):
        ctx.set(interlock.tick_ms, 1)
        ctx.set(interlock.main_relay.closed, 1)
        ctx.set(interlock.utc_seconds, 1_790_000_000)
        await ctx.tick()  # the power-up event
        for index in range(6):  # a power-up event and six answers: more than the ring holds
            ctx.set(interlock.request.payload, {
                "authority": SUPPLIER, "authenticated": 1, "action": Action.REMOTE_DISCONNECT,
                "target": Target.MAIN, "request_id": 100 + index, "counter": 500 + index})
            ctx.set(interlock.request.valid, 1)
            await ctx.tick()
            sent.append(ctx.get(interlock.event.payload))
        ctx.set(interlock.request.valid, 0)
        await ctx.tick()
        head = ctx.get(log.interlock_event_head.value)
        assert head == 7 and ctx.get(log.interlock_event_capacity.value) == 4
        for number in range(head - 4, head):
            ctx.set(log.interlock_event_select.value, number)
            await ticks(ctx, 2)
            record = ctx.get(log.interlock_event_record)
            event = sent[number - 1]  # record 0 is the power-up event
            assert (record.request_id, record.counter, record.reason) == (
                event.request_id, event.counter, event.reason.value)
            assert record.seconds == 1_790_000_000 and record.from_request == 1

    run_simulation(top, testbench)
    assert [event.reason for event in sent] == [Reason.COOLDOWN] * 6


# --- Building it ------------------------------------------------------------------------------

def test_the_registers_go_on_a_register_bank_and_the_settings_reach_the_interlock():
    register_map = RegisterMap()
    register_map.add_block(0x0700, LoadSwitchInterlock.REGISTERS)
    register_map.add_block(0x0710, InterlockLog.REGISTERS)
    bank = RegisterBank(register_map)
    interlock = LoadSwitchInterlock(meter_id=METER_ID, parameters=SIM)
    log = InterlockLog(capacity=4)
    top = Module()
    top.submodules.bank, top.submodules.interlock, top.submodules.log = bank, interlock, log
    connect_registers(top, bank, interlock, LoadSwitchInterlock.REGISTERS)
    connect_registers(top, bank, log, InterlockLog.REGISTERS)

    async def testbench(ctx):
        await ctx.tick()
        # The bank's reset values are the ones the interlock reads on its own.
        assert ctx.get(interlock.interlock_switching.cooldown_s) == 900
        assert ctx.get(bank.interlock_status.cooldown_remaining_s) == SIM.cooldown_min_s
        assert ctx.get(bank.interlock_event_capacity.value) == 4

    run_simulation(top, testbench)


@pytest.mark.parametrize("build", [
    lambda: InterlockParameters(cooldown_min_s=1800, cooldown_max_s=900),
    lambda: InterlockParameters(relay_pulse_ms=0),
    lambda: InterlockParameters(budget_max=300),
    lambda: InterlockLog(capacity=6),
], ids=["cooldown bounds", "pulse", "budget", "log capacity"])
def test_impossible_parameters_are_refused(build):
    with pytest.raises(ValueError):
        build()
