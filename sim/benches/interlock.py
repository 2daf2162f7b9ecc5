"""cocotb bench: the Verilog of the :class:`~refmeter.gateware.interlock.LoadSwitchInterlock`
under the sequences an attacker, a faulty relay or a person at the meter would produce.

The pytest side (``tests/test_cocotb_interlock.py``) builds the interlock with short
times and brings every port to the top under its flattened Amaranth name
(``request__payload``, ``main_relay__close``, ...). Requests, events and registers
are packed and unpacked with the gateware's own layouts (``Request``,
``InterlockEvent``, the registers' ``layout``), so no field offset is written here.

The bench plays everyone around the interlock: the security unit (:meth:`TB.ask`
hands over a request as verified, ``authenticated=0`` for a replayed or forged
command), a person at the button and the isolation switch, and the two latching
relays (:class:`Relay`), whose contacts follow their coils unless jammed. It acts
only just after a falling edge of the clock, so inputs are steady across every
rising edge; every helper returns there. A monitor (:meth:`TB._watch`) samples
every cycle twice, once settled before the rising edge and once after it, and
fails the test at once if a close coil is driven while the isolation switch or
latch is set, if both coils of a relay are driven, if the state changes without
an event that explains it, or if an event breaks the layout's rules.

Environment, set by the pytest side from what it built the Verilog with:

``REFMETER_INTERLOCK_PARAMETERS``
    The :class:`~refmeter.gateware.interlock.InterlockParameters`, as a JSON object.
``REFMETER_CYCLES_PER_MS``
    Clock cycles from one ``tick_ms`` pulse to the next.
"""

import json
import os
from dataclasses import dataclass

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from refmeter.gateware.interlock import (Action, DisconnectState, InterlockEvent,
                                         InterlockParameters, LoadSwitchInterlock, Reason,
                                         Request, Target)
from refmeter.gateware.registers import Access
from refmeter.gateware.security.authority import Authority

CLOCK_NS = 10
#: What the meter's clock says throughout: every event must be stamped with it.
UTC_SECONDS = 1_790_000_000
#: The ``interlock_status`` register's fields.
STATUS = next(register.layout for register in LoadSwitchInterlock.REGISTERS
              if register.name == "interlock_status")
#: The settings registers, each an input the bench drives (a register bank would).
SETTINGS = {register.name: register for register in LoadSwitchInterlock.REGISTERS
            if register.access is Access.RW}
REMOTE_SWITCHING = (Action.REMOTE_DISCONNECT, Action.REMOTE_RECONNECT)

SUPPLIER, BROKER, LOCAL = Authority.SUPPLIER, Authority.BROKER, Authority.LOCAL
CONNECTED = DisconnectState.CONNECTED
DISCONNECTED = DisconnectState.DISCONNECTED
READY = DisconnectState.READY_FOR_RECONNECTION


@dataclass(frozen=True)
class BuildParameters:
    """What the pytest side built the interlock with, and how fast its millisecond ticks."""

    interlock: InterlockParameters
    cycles_per_ms: int

    @classmethod
    def from_environment(cls) -> "BuildParameters":
        try:
            interlock = json.loads(os.environ["REFMETER_INTERLOCK_PARAMETERS"])
            cycles_per_ms = int(os.environ["REFMETER_CYCLES_PER_MS"])
        except KeyError as missing:
            raise RuntimeError(f"{missing} is not set: run this bench through "
                               f"tests/test_cocotb_interlock.py") from None
        return cls(InterlockParameters(**interlock), cycles_per_ms)

    def cycles(self, *, ms: int = 0, s: int = 0) -> int:
        """Clock cycles in ``ms`` milliseconds plus ``s`` interlock seconds."""
        return (ms + s * self.interlock.ms_per_second) * self.cycles_per_ms


@dataclass
class Pulse:
    """One coil pulse: the cycles in a row one coil was driven."""

    coil: str       #: "close" or "open"
    start: int      #: the bench cycle of its first sample
    cycles: int


class Relay:
    """A latching relay: its contacts move to the side of the coil driven, in the cycle
    after, and stay there; or they are jammed (welded shut, or stuck open) and ignore
    the coils. Every coil pulse is recorded.

    Parameters
    ----------
    dut :
        The interlock's top level.
    name : str
        ``main`` or ``priority``: the relay's ports are ``{name}_relay__*``.
    closed : bool
        The contacts' position at power-up.
    """

    def __init__(self, dut, name: str, *, closed: bool):
        self.name = name
        self._close = getattr(dut, f"{name}_relay__close")
        self._open = getattr(dut, f"{name}_relay__open")
        self._contacts = getattr(dut, f"{name}_relay__closed")
        self.position = closed
        #: None: the contacts follow the coils; True or False: stuck there.
        self.jammed: bool | None = None
        self.pulses: list[Pulse] = []
        self._coil_before: str | None = None
        self.drive_contacts()

    @property
    def contacts_closed(self) -> bool:
        return self.position if self.jammed is None else self.jammed

    def drive_contacts(self) -> None:
        self._contacts.value = int(self.contacts_closed)

    def coils(self) -> tuple[bool, bool]:
        """(close, open): the coils driven now."""
        return bool(self._close.value), bool(self._open.value)

    def sample(self, cycle: int) -> None:
        """Take this cycle's coils (settled before the rising edge)."""
        close, open_ = self.coils()
        coil = "close" if close else "open" if open_ else None
        if coil is not None:
            self.position = coil == "close"
            if coil == self._coil_before:
                self.pulses[-1].cycles += 1
            else:
                self.pulses.append(Pulse(coil, cycle, 1))
        self._coil_before = coil

    def coil_sequence(self) -> list[str]:
        return [pulse.coil for pulse in self.pulses]


class TB:
    """The interlock with its clock, millisecond tick, relays, monitor and the people
    and security unit around it."""

    def __init__(self, dut, *, main_closed: bool, priority_closed: bool, isolate: bool):
        self.dut = dut
        self.log = dut._log
        self.build = BuildParameters.from_environment()
        self.parameters = self.build.interlock
        self.relays = {"main": Relay(dut, "main", closed=main_closed),
                       "priority": Relay(dut, "priority", closed=priority_closed)}
        #: Every event, with the bench cycle it was seen in.
        self.events: list[tuple[int, InterlockEvent]] = []
        #: The events that changed the state (every state change must come with one).
        self.state_changes: list[tuple[int, InterlockEvent]] = []
        self.cycle = 0
        self._counter = 0
        self._state_before = CONNECTED if main_closed else DISCONNECTED

        # Every input gets a value at time 0 (Amaranth's `always @*` blocks only
        # evaluate when an input changes); settings read their reset values.
        dut.rst.value = 0
        dut.tick_ms.value = 0
        for port in (dut.request__valid, dut.button, dut.aux_override_button,
                     dut.active_power__valid, dut.priority_current__valid):
            port.value = 0
        dut.request__payload.value = 0
        dut.active_power__payload.value = 0
        dut.priority_current__payload.value = 0
        dut.utc_seconds.value = UTC_SECONDS
        dut.isolate.value = int(isolate)
        for name, register in SETTINGS.items():
            getattr(dut, name).value = register.layout.const(register.field_inits).as_bits()
        Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start()

    async def start(self) -> None:
        """Power up: reset with the relays in their initial positions, then let the
        millisecond tick run and the monitor watch."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2, FallingEdge)
        # One tick_ms pulse every cycles_per_ms cycles, high across exactly one rising
        # edge: started at a falling edge, high for one clock period.
        period = self.build.cycles_per_ms * CLOCK_NS
        Clock(self.dut.tick_ms, period, unit="ns", impl="gpi", period_high=CLOCK_NS).start()
        self.dut.rst.value = 0
        cocotb.start_soon(self._watch())

    # --- The monitor ----------------------------------------------------------------------

    async def _watch(self) -> None:
        dut = self.dut
        while True:
            await FallingEdge(dut.clk)
            for relay in self.relays.values():
                relay.drive_contacts()
            await ReadOnly()
            # Settled before the rising edge: what the flip-flops and relays take.
            self.cycle += 1
            self._check_coils()
            for relay in self.relays.values():
                relay.sample(self.cycle)
            self._check_state_and_event()
            await RisingEdge(dut.clk)
            await ReadOnly()
            self._check_coils()

    def _check_coils(self) -> None:
        held = bool(self.dut.isolate.value) or self.status().isolated
        for relay in self.relays.values():
            close, open_ = relay.coils()
            assert not (close and open_), f"cycle {self.cycle}: both {relay.name} coils driven"
            assert not (close and held), (f"cycle {self.cycle}: {relay.name} relay's close coil "
                                          f"driven while isolated")

    def _check_state_and_event(self) -> None:
        state = self.state()
        event = self.event_now()
        if event is not None:
            self.events.append((self.cycle, event))
            reason = Reason(event.reason)
            assert event.seconds == UTC_SECONDS, f"event stamped {event.seconds}: {event}"
            assert event.accepted == (reason in (Reason.DONE, Reason.DELAYED)), (
                f"cycle {self.cycle}: accepted={event.accepted} with reason {reason.name}")
            if not event.from_request:
                # A happening on the meter: no request's fields.
                fields = (Authority(event.authority), event.authenticated, event.request_id,
                          event.counter)
                assert fields == (LOCAL, 0, 0, 0), f"cycle {self.cycle}: a happening with {fields}"
            assert event.state == state, (f"cycle {self.cycle}: event says {event.state.name}, "
                                          f"state output is {state.name}")
        if state != self._state_before:
            assert event is not None, (f"cycle {self.cycle}: state {self._state_before.name} -> "
                                       f"{state.name} with no event")
            self.state_changes.append((self.cycle, event))
            self._state_before = state

    # --- Reading it -----------------------------------------------------------------------

    def event_now(self) -> InterlockEvent | None:
        """The event on the ``event`` stream this cycle, decoded; None if none."""
        if not self.dut.event__valid.value:
            return None
        return InterlockEvent.from_bits(int(self.dut.event__payload.value))

    def status(self):
        """``interlock_status``, decoded (a ``data.Const`` of :data:`STATUS`)."""
        return STATUS.from_bits(int(self.dut.interlock_status.value))

    def state(self) -> DisconnectState:
        return DisconnectState(int(self.dut.state.value))

    def alarm(self) -> bool:
        return bool(self.dut.relay_alarm.value)

    def happenings(self, action: Action) -> list[InterlockEvent]:
        """The events ``action`` the interlock logged by itself (not answers to requests)."""
        return [event for _, event in self.events
                if event.action == action and not event.from_request]

    # --- Acting on it ---------------------------------------------------------------------

    async def cycles(self, count: int) -> None:
        await ClockCycles(self.dut.clk, count, FallingEdge)

    async def ms(self, count: int) -> None:
        await self.cycles(self.build.cycles(ms=count))

    async def seconds(self, count: int) -> None:
        await self.cycles(self.build.cycles(s=count))

    async def settle(self) -> None:
        """Let the relays finish moving: a whole pulse and rest, with margin."""
        await self.ms(self.parameters.relay_pulse_ms + self.parameters.relay_settle_ms + 2)

    async def until_cool(self) -> None:
        """Wait for the cooldown to end."""
        while self.status().cooldown_remaining_s:
            await self.cycles(1)

    def set_switching(self, **fields: int) -> None:
        """Write ``interlock_switching`` fields, the others at their reset values."""
        register = SETTINGS["interlock_switching"]
        self.dut.interlock_switching.value = register.layout.const(
            {**register.field_inits, **fields}).as_bits()

    async def ask(self, authority: Authority, action: Action, *, target: Target = Target.MAIN,
                  request_id: int = 1, authenticated: bool = True,
                  counter: int | None = None) -> InterlockEvent:
        """Hand over one request, as the security unit does, and return its answer (the
        event of the next cycle). ``counter`` defaults to a fresh invocation counter."""
        if counter is None:
            self._counter += 1
            counter = self._counter
        self.dut.request__payload.value = Request.const({
            "authority": authority, "authenticated": authenticated, "action": action,
            "target": target, "request_id": request_id, "counter": counter}).as_bits()
        self.dut.request__valid.value = 1
        await self.cycles(1)
        self.dut.request__valid.value = 0
        answer = self.event_now()
        assert answer is not None, f"no event answered {authority.name} {action.name}"
        assert answer.from_request and (
            Authority(answer.authority), answer.authenticated, answer.action, answer.target,
            answer.request_id, answer.counter) == (
            authority, authenticated, action, target, request_id, counter), (
            f"the answer to {authority.name} {action.name} #{request_id} (counter {counter}) "
            f"does not echo it: {answer}")
        return answer

    async def disconnect(self, first: Authority = SUPPLIER, second: Authority = BROKER, *,
                         request_id: int = 1) -> tuple[InterlockEvent, InterlockEvent]:
        """Two sources ask for the same remote disconnect, one after the other."""
        return (await self.ask(first, Action.REMOTE_DISCONNECT, request_id=request_id),
                await self.ask(second, Action.REMOTE_DISCONNECT, request_id=request_id))

    async def press(self, *, bounce_ms: tuple[int, ...] = (1, 1, 1, 1)) -> None:
        """A person presses and releases the reconnect button: the contact bounces on the
        way in and out (alternate closed and open stretches of ``bounce_ms``, each
        shorter than the debounce time), and is held in between, and left released
        afterwards, for longer than the debounce time."""
        steady_ms = self.parameters.debounce_ms + 2
        for pressed in (1, 0):
            for index, stretch_ms in enumerate(bounce_ms):
                self.dut.button.value = pressed if index % 2 == 0 else 1 - pressed
                await self.ms(stretch_ms)
            self.dut.button.value = pressed
            await self.ms(steady_ms)

    def expect(self, answer: InterlockEvent, reason: Reason, state: DisconnectState) -> None:
        """Check that ``answer`` ended with ``reason`` and left the main circuit in ``state``."""
        assert (Reason(answer.reason), answer.state) == (reason, state), (
            f"{Action(answer.action).name} from {Authority(answer.authority).name}: "
            f"{Reason(answer.reason).name} leaving {answer.state.name}, expected {reason.name} "
            f"leaving {state.name}")


async def started(dut, *, main_closed: bool = True, priority_closed: bool = True,
                  isolate: bool = False) -> TB:
    tb = TB(dut, main_closed=main_closed, priority_closed=priority_closed, isolate=isolate)
    await tb.start()
    return tb


# --- Power-up -----------------------------------------------------------------------------

@cocotb.test()
@cocotb.parametrize(main_closed=[True, False], priority_closed=[True, False])
async def power_up_adopts_the_sensed_relays_and_switches_nothing(dut, main_closed,
                                                                 priority_closed):
    """Power-up takes the state from the main contacts and the priority circuit from its
    own, logs POWER_UP, pulses no coil, and starts a cooldown."""
    tb = await started(dut, main_closed=main_closed, priority_closed=priority_closed)
    adopted = CONNECTED if main_closed else DISCONNECTED
    await tb.cycles(2)
    assert [(event.action, event.state) for _, event in tb.events] == [(Action.POWER_UP, adopted)]
    status = tb.status()
    assert (DisconnectState(status.state), status.priority_on) == (adopted, priority_closed)
    # A power cut restarts the cooldown, at least its shortest setting: remote
    # switching is refused until then.
    assert status.cooldown_remaining_s >= tb.parameters.cooldown_min_s
    await tb.seconds(tb.parameters.cooldown_min_s - 1)
    action = Action.REMOTE_DISCONNECT if main_closed else Action.REMOTE_RECONNECT
    tb.expect(await tb.ask(SUPPLIER, action), Reason.COOLDOWN, adopted)
    await tb.until_cool()
    await tb.settle()
    for relay in tb.relays.values():
        assert relay.pulses == [], f"{relay.name} relay pulsed at power-up: {relay.pulses}"
    status = tb.status()
    assert (status.main_closed, status.priority_closed) == (main_closed, priority_closed)
    assert tb.state() == adopted and not tb.alarm()


@cocotb.test()
@cocotb.parametrize(main_closed=[True, False], priority_closed=[True, False])
async def power_up_with_the_isolation_switch_thrown_opens_and_latches(dut, main_closed,
                                                                      priority_closed):
    """Powered up isolated, the interlock opens whichever relay is closed, never closes
    one, latches isolation, and refuses the button."""
    tb = await started(dut, main_closed=main_closed, priority_closed=priority_closed,
                       isolate=True)
    await tb.settle()
    actions = [event.action for _, event in tb.events]
    assert len(actions) == 2 and set(actions) == {Action.POWER_UP, Action.ISOLATE}, actions
    assert [event.state for event in tb.happenings(Action.ISOLATE)] == [DISCONNECTED]
    status = tb.status()
    assert status.isolated and tb.state() == DISCONNECTED and not status.priority_on
    assert not (status.main_closed or status.priority_closed)
    for relay, was_closed in ((tb.relays["main"], main_closed),
                              (tb.relays["priority"], priority_closed)):
        assert relay.coil_sequence() == (["open"] if was_closed else []), (
            f"{relay.name} relay, sensed {'closed' if was_closed else 'open'}: {relay.pulses}")
    await tb.press()
    (press,) = tb.happenings(Action.MANUAL_RECONNECT)
    tb.expect(press, Reason.ISOLATED, DISCONNECTED)


# --- Two sources --------------------------------------------------------------------------

@cocotb.test()
async def a_single_source_disconnect_is_refused_logged_and_forgotten(dut):
    """One source alone never disconnects: refused (AWAITING_SECOND_SOURCE) and kept for
    the two-source window only; the other source after that pairs with nothing."""
    tb = await started(dut)
    await tb.until_cool()
    first = await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=7)
    tb.expect(first, Reason.AWAITING_SECOND_SOURCE, CONNECTED)
    assert (tb.status().pending_supplier, tb.status().pending_broker) == (1, 0)
    await tb.seconds(tb.parameters.two_source_window_s - 1)
    assert first in [event for _, event in tb.events], "the refusal was not logged"
    assert tb.status().pending_supplier, "the first source expired before its window"
    await tb.seconds(3)
    assert not tb.status().pending_supplier, "the first source outlived its window"
    late = await tb.ask(BROKER, Action.REMOTE_DISCONNECT, request_id=7)
    tb.expect(late, Reason.AWAITING_SECOND_SOURCE, CONNECTED)
    await tb.settle()
    assert tb.relays["main"].pulses == [] and tb.status().main_closed


@cocotb.test()
@cocotb.parametrize(first=[SUPPLIER, BROKER])
async def two_sources_in_either_order_disconnect_the_main_circuit_only(dut, first):
    """The supplier and the broker naming the same request disconnect, whichever asks
    first; the main relay opens, the priority circuit stays on."""
    tb = await started(dut)
    await tb.until_cool()
    second = BROKER if first == SUPPLIER else SUPPLIER
    waiting, done = await tb.disconnect(first, second, request_id=0x2A5C)
    tb.expect(waiting, Reason.AWAITING_SECOND_SOURCE, CONNECTED)
    tb.expect(done, Reason.DONE, DISCONNECTED)
    await tb.settle()
    status = tb.status()
    assert not (status.main_closed or status.pending_supplier or status.pending_broker)
    assert tb.relays["main"].coil_sequence() == ["open"]
    assert tb.relays["main"].pulses[0].cycles >= tb.build.cycles(ms=tb.parameters.relay_pulse_ms)
    assert status.priority_on and status.priority_closed and tb.relays["priority"].pulses == []


@cocotb.test()
async def a_repeated_source_is_not_a_second_source(dut):
    """The same authority asking again, however often, is SAME_SOURCE and changes
    nothing; its request still waits for the other source."""
    tb = await started(dut)
    await tb.until_cool()
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=5),
              Reason.AWAITING_SECOND_SOURCE, CONNECTED)
    for _ in range(5):
        tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=5),
                  Reason.SAME_SOURCE, CONNECTED)
    await tb.settle()
    assert tb.relays["main"].pulses == [] and tb.status().pending_supplier
    tb.expect(await tb.ask(BROKER, Action.REMOTE_DISCONNECT, request_id=5),
              Reason.DONE, DISCONNECTED)


@cocotb.test()
async def requests_with_different_ids_do_not_pair(dut):
    """A supplier request and a broker request naming different ids are two single
    sources; a disconnect happens only when one source names the other's id."""
    tb = await started(dut)
    await tb.until_cool()
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=7),
              Reason.AWAITING_SECOND_SOURCE, CONNECTED)
    tb.expect(await tb.ask(BROKER, Action.REMOTE_DISCONNECT, request_id=8),
              Reason.AWAITING_SECOND_SOURCE, CONNECTED)
    await tb.settle()
    status = tb.status()
    assert (status.pending_supplier, status.pending_broker) == (1, 1)
    assert tb.relays["main"].pulses == [] and status.main_closed
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=8),
              Reason.DONE, DISCONNECTED)


# --- Replays ------------------------------------------------------------------------------

@cocotb.test()
async def replayed_requests_are_refused_and_change_nothing(dut):
    """Replayed commands reach the interlock unauthenticated (the security unit finds
    their counter stale): refused UNAUTHENTICATED, no source remembered, nothing moved;
    even a replay of a disconnect that once succeeded."""
    tb = await started(dut)
    await tb.until_cool()
    before = tb.status()
    for authority in (SUPPLIER, BROKER):
        tb.expect(await tb.ask(authority, Action.REMOTE_DISCONNECT, request_id=9,
                               authenticated=False), Reason.UNAUTHENTICATED, CONNECTED)
    await tb.settle()
    assert tb.status() == before and tb.relays["main"].pulses == []
    # A replayed first half does not pair with a genuine second.
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=9,
                           authenticated=False), Reason.UNAUTHENTICATED, CONNECTED)
    tb.expect(await tb.ask(BROKER, Action.REMOTE_DISCONNECT, request_id=9),
              Reason.AWAITING_SECOND_SOURCE, CONNECTED)
    genuine = await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=9)
    tb.expect(genuine, Reason.DONE, DISCONNECTED)
    # Supply back: armed remotely, completed at the button.
    await tb.until_cool()
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_RECONNECT), Reason.DONE, READY)
    await tb.press()
    await tb.settle()
    assert tb.state() == CONNECTED
    await tb.until_cool()
    # The successful disconnect's commands again, with their own counters.
    for _, event in tb.events:
        if event.from_request and event.action == Action.REMOTE_DISCONNECT and event.authenticated:
            replay = await tb.ask(Authority(event.authority), Action.REMOTE_DISCONNECT,
                                  request_id=event.request_id, counter=event.counter,
                                  authenticated=False)
            tb.expect(replay, Reason.UNAUTHENTICATED, CONNECTED)
    await tb.settle()
    assert tb.relays["main"].coil_sequence() == ["open", "close"]
    status = tb.status()
    assert status.main_closed and not (status.pending_supplier or status.pending_broker)


# --- Storm --------------------------------------------------------------------------------

@cocotb.test()
async def an_on_off_storm_switches_once_per_cooldown_within_the_budget(dut):
    """Both remote keys send disconnect pairs and reconnects back to back for a long
    while, and a person presses the button whenever it is armed: each remote state
    change waits out a cooldown after the last change, remote requests never connect,
    and once the switching budget is spent nothing closes."""
    tb = await started(dut)
    cooldown_s, budget = tb.parameters.cooldown_min_s, 4
    storm_s = 14 * cooldown_s
    tb.set_switching(cooldown_s=cooldown_s, relay_budget=budget)

    async def person():
        while True:
            if tb.state() == READY:
                await tb.press()
            await tb.cycles(1)

    async def storm_request(authority, action, request_id):
        await tb.ask(authority, action, request_id=request_id)
        # A free cycle between requests, for the button's event: the interlock decides
        # happenings in cycles without a request (the security unit takes thousands
        # of cycles to verify each command).
        await tb.cycles(1)

    presses = cocotb.start_soon(person())
    end = tb.cycle + tb.build.cycles(s=storm_s)
    request_id = 0
    while tb.cycle < end:
        request_id += 1
        await storm_request(SUPPLIER, Action.REMOTE_DISCONNECT, request_id)
        await storm_request(BROKER, Action.REMOTE_DISCONNECT, request_id)
        await storm_request(SUPPLIER, Action.REMOTE_RECONNECT, request_id)
    presses.cancel()
    await tb.settle()
    tb.log.info("%d requests in %d s: %d state changes, %d relay operations", 3 * request_id,
                storm_s, len(tb.state_changes), tb.status().operations)

    remote = [(cycle, event) for cycle, event in tb.state_changes
              if event.from_request and event.action in REMOTE_SWITCHING]
    assert len(remote) >= 3, f"the storm switched only {len(remote)} times"
    assert len(remote) <= storm_s // cooldown_s + 1
    assert all(event.state != CONNECTED for _, event in remote)
    # The cooldown runs in whole interlock seconds, the first of them cut short.
    least_gap = tb.build.cycles(s=cooldown_s - 1)
    for cycle, event in remote:
        # Power-up (cycle 0) started a cooldown too.
        last = max([0] + [at for at, _ in tb.state_changes if at < cycle])
        assert cycle - last > least_gap, (
            f"{Action(event.action).name} at cycle {cycle} changed the state {cycle - last} "
            f"cycles after the last change; the cooldown is {cooldown_s} s")
    # The budget: no coil pulse closes once `budget` operations were made.
    pulses = sorted((pulse for relay in tb.relays.values() for pulse in relay.pulses),
                    key=lambda pulse: pulse.start)
    assert pulses and all(index < budget for index, pulse in enumerate(pulses)
                          if pulse.coil == "close")
    assert tb.status().operations == len(pulses)
    refused = [event for event in tb.happenings(Action.MANUAL_RECONNECT) if not event.accepted]
    assert any(event.reason == Reason.BUDGET_SPENT for event in refused), \
        "the storm never spent the budget"
    assert tb.relays["priority"].pulses == []


# --- Cooldown -----------------------------------------------------------------------------

@cocotb.test()
async def commands_during_a_cooldown_are_refused_until_it_ends(dut):
    """After a state change remote requests are COOLDOWN for the set time, and a first
    source refused then is not remembered; the first change after it restarts it."""
    tb = await started(dut)
    cooldown_s = tb.parameters.cooldown_min_s + 1  # inside the range: taken as set
    tb.set_switching(cooldown_s=cooldown_s)
    await tb.until_cool()
    # A local disconnect (prepayment) is not delayed, and restarts the cooldown.
    tb.expect(await tb.ask(LOCAL, Action.LOCAL_DISCONNECT), Reason.DONE, READY)
    changed = tb.cycle
    assert tb.status().cooldown_remaining_s == cooldown_s
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_RECONNECT), Reason.COOLDOWN, READY)
    refused = 0
    while tb.status().cooldown_remaining_s:
        for authority in (SUPPLIER, BROKER):
            tb.expect(await tb.ask(authority, Action.REMOTE_DISCONNECT, request_id=3),
                      Reason.COOLDOWN, READY)
            refused += 1
    assert tb.cycle - changed > tb.build.cycles(s=cooldown_s - 1), "the cooldown ended early"
    assert not (tb.status().pending_supplier or tb.status().pending_broker)
    tb.log.info("%d remote requests refused in a %d s cooldown", refused, cooldown_s)
    tb.expect(await tb.ask(BROKER, Action.REMOTE_DISCONNECT, request_id=3),
              Reason.AWAITING_SECOND_SOURCE, READY)
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_DISCONNECT, request_id=3),
              Reason.DONE, DISCONNECTED)
    assert tb.status().cooldown_remaining_s == cooldown_s
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_RECONNECT), Reason.COOLDOWN, DISCONNECTED)


# --- Isolation ----------------------------------------------------------------------------

@cocotb.test()
async def commands_during_isolation_are_refused_and_nothing_closes(dut):
    """The isolation switch opens both relays at once; while it is in, every request
    and the button are refused ISOLATED; a bouncing release does not release; the real
    release leaves the supply disconnected; afterwards the usual way reconnects."""
    tb = await started(dut)
    await tb.until_cool()
    dut.isolate.value = 1
    await tb.cycles(1)
    # At once: neither debounced nor waiting for its turn in the log.
    assert all(relay.coils() == (False, True) for relay in tb.relays.values())
    await tb.settle()
    await tb.until_cool()  # the isolation's state change restarted it
    assert tb.status().isolated and tb.state() == DISCONNECTED
    for authority, action in ((SUPPLIER, Action.REMOTE_RECONNECT),
                              (BROKER, Action.REMOTE_RECONNECT),
                              (SUPPLIER, Action.REMOTE_DISCONNECT),
                              (BROKER, Action.REMOTE_DISCONNECT),
                              (LOCAL, Action.LOCAL_DISCONNECT)):
        tb.expect(await tb.ask(authority, action), Reason.ISOLATED, DISCONNECTED)
    await tb.press()
    (press,) = tb.happenings(Action.MANUAL_RECONNECT)
    tb.expect(press, Reason.ISOLATED, DISCONNECTED)
    # Put back and thrown again within the debounce time, four times: still latched.
    for _ in range(4):
        dut.isolate.value = 0
        await tb.ms(tb.parameters.debounce_ms - 1)
        dut.isolate.value = 1
        await tb.cycles(1)
    assert tb.status().isolated
    dut.isolate.value = 0
    await tb.ms(tb.parameters.debounce_ms + 2)
    status = tb.status()
    assert not status.isolated and tb.state() == DISCONNECTED and not status.priority_on
    (released,) = tb.happenings(Action.ISOLATION_RELEASED)
    assert released.state == DISCONNECTED
    assert [event.state for event in tb.happenings(Action.ISOLATE)] == [DISCONNECTED]
    for relay in tb.relays.values():
        assert relay.coil_sequence() == ["open"], f"{relay.name} relay: {relay.pulses}"
    # Released: armed remotely, the button connects the main circuit, then the priority one.
    tb.expect(await tb.ask(SUPPLIER, Action.REMOTE_RECONNECT), Reason.DONE, READY)
    await tb.press()
    await tb.press()
    await tb.settle()
    assert [(event.target, Reason(event.reason)) for event in
            tb.happenings(Action.MANUAL_RECONNECT)[1:]] == [(Target.MAIN, Reason.DONE),
                                                           (Target.PRIORITY, Reason.DONE)]
    assert [relay.coil_sequence() for relay in tb.relays.values()] == [["open", "close"]] * 2


@cocotb.test()
async def isolation_cuts_a_closing_pulse_at_once(dut):
    """The isolation switch thrown while the main relay's close coil is driven stops
    that pulse in the same cycle and opens the relay."""
    tb = await started(dut)
    main = tb.relays["main"]
    tb.expect(await tb.ask(LOCAL, Action.LOCAL_DISCONNECT), Reason.DONE, READY)
    await tb.settle()
    person = cocotb.start_soon(tb.press())
    while main.coil_sequence()[-1:] != ["close"]:
        await tb.cycles(1)
    dut.isolate.value = 1
    await person
    await tb.settle()
    assert main.coil_sequence() == ["open", "close", "open"]
    full_pulse = tb.build.cycles(ms=tb.parameters.relay_pulse_ms)
    assert main.pulses[1].cycles < full_pulse <= main.pulses[2].cycles
    assert tb.state() == DISCONNECTED and tb.status().isolated and not tb.status().main_closed
    assert [(Action(event.action), event.state) for _, event in tb.state_changes] == [
        (Action.LOCAL_DISCONNECT, READY), (Action.MANUAL_RECONNECT, CONNECTED),
        (Action.ISOLATE, DISCONNECTED)]


# --- The button ---------------------------------------------------------------------------

@cocotb.test()
async def a_bouncing_press_counts_once(dut):
    """Chatter never stable for the debounce time is no press; a press that bounces on
    the way in and out is one press: one reconnection, one closing pulse."""
    tb = await started(dut)
    tb.expect(await tb.ask(LOCAL, Action.LOCAL_DISCONNECT), Reason.DONE, READY)
    await tb.settle()
    for _ in range(10):
        dut.button.value = 1
        await tb.ms(tb.parameters.debounce_ms - 1)
        dut.button.value = 0
        await tb.cycles(1)
    await tb.settle()
    assert tb.happenings(Action.MANUAL_RECONNECT) == [] and tb.state() == READY
    await tb.press(bounce_ms=(1, 2, 1, 1, 2, 1, 1))
    await tb.settle()
    (press,) = tb.happenings(Action.MANUAL_RECONNECT)
    tb.expect(press, Reason.DONE, CONNECTED)
    assert tb.relays["main"].coil_sequence() == ["open", "close"]


@cocotb.test()
@cocotb.parametrize(main_closed=[True, False])
async def a_press_while_not_armed_does_nothing(dut, main_closed):
    """Connected, or disconnected and not armed (the priority circuit on): a press is
    logged WRONG_STATE and nothing moves."""
    tb = await started(dut, main_closed=main_closed)
    state = CONNECTED if main_closed else DISCONNECTED
    await tb.settle()
    await tb.press()
    await tb.press(bounce_ms=(2, 1, 2, 1))
    await tb.settle()
    presses = tb.happenings(Action.MANUAL_RECONNECT)
    assert len(presses) == 2
    for press in presses:
        tb.expect(press, Reason.WRONG_STATE, state)
    assert tb.state() == state and all(relay.pulses == [] for relay in tb.relays.values())


# --- Relay feedback faults ----------------------------------------------------------------

@cocotb.test()
async def welded_contacts_raise_the_alarm_and_are_logged(dut):
    """Main contacts welded shut: a remote disconnect pulses the open coil, the contacts
    stay closed, and the interlock raises the alarm and logs CONTACTS_WELDED once."""
    tb = await started(dut)
    main = tb.relays["main"]
    main.jammed = True
    await tb.until_cool()
    _, done = await tb.disconnect(request_id=11)
    tb.expect(done, Reason.DONE, DISCONNECTED)
    await tb.settle()
    await tb.ms(tb.parameters.relay_settle_ms)  # longer than any fault takes to show
    assert main.coil_sequence() == ["open"]
    status = tb.status()
    assert tb.alarm() and status.main_fault and status.main_welded
    assert status.main_closed and tb.state() == DISCONNECTED  # output_state tells the truth
    (fault,) = tb.happenings(Action.RELAY_FAULT)
    assert (fault.target, Reason(fault.reason), fault.accepted) == (
        Target.MAIN, Reason.CONTACTS_WELDED, 0)


@cocotb.test()
@cocotb.parametrize(relay_name=["main", "priority"])
async def contacts_that_part_by_themselves_raise_the_alarm_and_are_logged(dut, relay_name):
    """A relay commanded closed whose contacts open (a mechanical fault, or feedback
    tampered with) raises the alarm and logs CONTACTS_MISMATCH once; the alarm clears
    when the contacts agree again."""
    tb = await started(dut)
    await tb.settle()
    assert not tb.alarm()
    tb.relays[relay_name].jammed = False
    await tb.settle()
    status = tb.status()
    assert tb.alarm() and getattr(status, f"{relay_name}_fault") and not status.main_welded
    tb.relays[relay_name].jammed = None
    await tb.cycles(2)
    assert not tb.alarm() and not getattr(tb.status(), f"{relay_name}_fault")
    (fault,) = tb.happenings(Action.RELAY_FAULT)
    target = Target.MAIN if relay_name == "main" else Target.PRIORITY
    assert (fault.target, Reason(fault.reason)) == (target, Reason.CONTACTS_MISMATCH)
    assert tb.state() == CONNECTED and tb.status().priority_on
