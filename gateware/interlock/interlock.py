"""The load-switch interlock: the final authority on the meter's relays.

A host, a head-end or a network attacker can only *ask*: the security unit verifies
each command and hands the interlock a :class:`~.layouts.Request`, and the interlock
alone decides, by the rules of docs/interlock.md, whether a relay moves. Every
request is answered with an :class:`~.layouts.InterlockEvent`, accepted or refused
with a reason, and so is everything that happens on the meter (isolation, trips,
the button, relay faults), one event per cycle: a request first, happenings in the
next free cycles, so a state change always comes with the event that explains it.
"""

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..registers import Access, Field, Guard, Register, register_ports
from ..security.authority import Authority
from .auxload import AuxLoadControl
from .debounce import Debouncer
from .layouts import Action, AuxLevel, DisconnectState, InterlockEvent, Reason, Request, Target
from .limiter import SustainedThreshold, Limiter
from .relay import LatchingRelayDriver, RelaySignature

__all__ = ["InterlockParameters", "LoadSwitchInterlock", "REQUEST_REGISTER", "REQUEST_RULES",
           "TWO_SOURCES"]

#: The authorities whose agreement a remote disconnect needs: the supplier and the
#: access-control broker (GB critical commands: supplier signature and DCC MAC).
TWO_SOURCES = (Authority.SUPPLIER, Authority.BROKER)

#: Each request action: the circuit it must name, and who may ask for it.
REQUEST_RULES = {
    Action.REMOTE_DISCONNECT: (Target.MAIN, frozenset(TWO_SOURCES)),
    Action.REMOTE_RECONNECT:  (Target.MAIN, frozenset(TWO_SOURCES)),
    Action.LOCAL_DISCONNECT:  (Target.MAIN, frozenset({Authority.LOCAL})),
    Action.AUX_OFF:           (Target.AUX, frozenset({Authority.SUPPLIER, Authority.NETWORK})),
    Action.AUX_REDUCE:        (Target.AUX, frozenset({Authority.SUPPLIER, Authority.NETWORK})),
    Action.AUX_RESTORE:       (Target.AUX, frozenset({Authority.SUPPLIER, Authority.NETWORK})),
}
#: What a command writes to ask the interlock for something. Only the security unit
#: writes it, for a command it verified under any slot; the meter hands the value on
#: as a :class:`~.layouts.Request` with that slot and the command's invocation
#: counter, and the interlock decides by :data:`REQUEST_RULES` (docs/interlock.md).
REQUEST_REGISTER = Register("interlock_request", Access.WO, (
    Field("action", Request.as_shape()["action"].width, "what is asked for: 0 remote "
          "disconnect, 1 remote reconnect, 2 local disconnect, 3-5 aux off/reduce/restore"),
    Field("target", Request.as_shape()["target"].width, "0 main circuit, 1 priority circuit, "
                                                       "2 auxiliary load"),
    Field("request_id", Request.as_shape()["request_id"].width,
          "names the request; a remote disconnect's two sources give the same id"),
), "a switching request, written only by an authenticated command",
    guard=Guard.AUTHENTICATED, authorities=set(Authority))

_AUX_LEVELS = {Action.AUX_OFF: AuxLevel.OFF, Action.AUX_REDUCE: AuxLevel.REDUCED,
               Action.AUX_RESTORE: AuxLevel.FULL}

_NO_LIMIT_W = (1 << 24) - 1


@dataclass(frozen=True)
class InterlockParameters:
    """Times and limits fixed when the gateware is built (defaults from issue 5).

    Proofs and tests use small values; ``ms_per_second`` is shortened only there.
    """

    ms_per_second: int = 1000          #: ``tick_ms`` pulses per interlock second
    debounce_ms: int = 30              #: buttons and the isolation switch's release
    relay_pulse_ms: int = 60           #: minimum coil pulse of the latching relays
    relay_settle_ms: int = 250         #: minimum rest after a pulse, before feedback counts
    cooldown_min_s: int = 900          #: the cooldown setting is clamped to these ...
    cooldown_max_s: int = 1800         #: ... bounds (15 to 30 min)
    two_source_window_s: int = 300     #: how long the first source of a disconnect waits
    budget_period_s: int = 86_400      #: the switching budget's period (a day)
    budget_max: int = 48               #: the budget setting is clamped to this
    priority_limit_ma: int = 10_000    #: the priority circuit's limiter, mA RMS
    priority_sustain_s: int = 10       #: how long it must be exceeded to trip
    limiter_floor_w: int = 1000        #: no limiter setting trips a home below this, W
    aux_override_s: int = 14_400       #: how long the consumer's aux override lasts (4 h)

    def __post_init__(self):
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Interlock parameter {name} must be a positive integer, "
                                 f"not {value!r}")
        if not self.cooldown_min_s <= self.cooldown_max_s < 1 << 16:
            raise ValueError(f"Cooldown bounds must satisfy min <= max < 65536 s, not "
                             f"{self.cooldown_min_s} and {self.cooldown_max_s}")
        if self.budget_max > 255:
            raise ValueError(f"The switching budget is counted in 8 bits, not {self.budget_max}")


_SWITCHING_GUARD = {"guard": Guard.AUTHENTICATED, "authorities": frozenset(TWO_SOURCES)}
_LIMITER_GUARD = {"guard": Guard.AUTHENTICATED, "authorities": frozenset({Authority.SUPPLIER})}
_LOAD_MANAGEMENT_GUARD = {"guard": Guard.AUTHENTICATED,
                          "authorities": frozenset({Authority.SUPPLIER, Authority.NETWORK})}


class LoadSwitchInterlock(wiring.Component):
    """Class 70 disconnect control (control_mode 1), class 71 limiter, priority
    circuit, auxiliary load control and relay safety (docs/interlock.md).

    Parameters
    ----------
    meter_id : int
        The meter's EUI-64: it sets this meter's auxiliary load delay.
    parameters : InterlockParameters

    Attributes
    ----------
    request : stream in, :class:`~.layouts.Request`
        Verified requests from the security unit; always ready, each answered by an
        event.
    event : stream out, :class:`~.layouts.InterlockEvent`
        One per request and per happening; the consumer must always be ready (the
        :class:`~.log.InterlockLog` is).
    tick_ms : Signal(), in
        One-cycle pulse every millisecond (``RealTimeClock.tick_ms``).
    utc_seconds : Signal(32), in
        UTC seconds, for event stamps and the emergency profile.
    button : Signal(), in
        The local reconnect push button, raw (debounced here); 1 while pressed.
    isolate : Signal(), in
        The manual isolation switch; 1 in isolate. Acts at once, released after it
        has been back for ``debounce_ms``.
    aux_override_button : Signal(), in
        The consumer's override button, raw; 1 while pressed.
    active_power : stream in, signed(32)
        The limiter's monitored value: active power, W, one per measurement window.
    priority_current : stream in, unsigned(32)
        The priority circuit's RMS current, mA, one per measurement window.
    main_relay, priority_relay : :class:`~.relay.RelaySignature`, out
        Coils and contact feedback of the two latching relays.
    aux_level : Signal(AuxLevel), out
        What the auxiliary load may draw.
    state : Signal(DisconnectState), out
        Class 70 ``control_state``.
    relay_alarm : Signal(), out
        A relay's contacts disagree with its last command (mismatch or welded).

    Besides these it has one port per register of :attr:`REGISTERS`, which reads
    its reset value when nothing drives it.
    """

    REGISTERS = (
        Register("interlock_status", Access.RO, (
            Field("state", 2, "class 70 control_state: 0 disconnected, 1 connected, "
                              "2 ready_for_reconnection"),
            Field("isolated", 1, "the manual isolation latch is set"),
            Field("main_closed", 1, "main relay contacts are closed (class 70 output_state)"),
            Field("main_fault", 1, "main relay contacts disagree with its last command"),
            Field("main_welded", 1, "main relay commanded open, contacts still closed"),
            Field("priority_on", 1, "the priority circuit's relay is wanted closed"),
            Field("priority_closed", 1, "priority relay contacts are closed"),
            Field("priority_fault", 1, "priority relay contacts disagree with its last command"),
            Field("limiter_over", 1, "class 71: active power is over the active threshold"),
            Field("emergency_active", 1, "class 71: the emergency profile is active"),
            Field("aux_level", 2, "auxiliary load now: 0 full, 1 reduced, 2 off"),
            Field("aux_scheduled", 2, "auxiliary load level last requested remotely"),
            Field("aux_overridden", 1, "the consumer's auxiliary override is in force"),
            Field("pending_supplier", 1, "a remote disconnect from the supplier awaits the broker"),
            Field("pending_broker", 1, "a remote disconnect from the broker awaits the supplier"),
            Field("cooldown_remaining_s", 16, "seconds until remote switching requests are "
                                              "taken again"),
            Field("operations", 8, "relay operations in this budget period"),
        ), "load-switch interlock status"),
        Register("interlock_switching", Access.RW, (
            Field("cooldown_s", 16, "cooldown after any state change, s (clamped to 900-1800)",
                  init=900),
            Field("relay_budget", 8, "relay operations per day after which nothing closes "
                                     "(clamped to 48)", init=24),
        ), "load-switch cooldown and switching budget", **_SWITCHING_GUARD),
        Register("interlock_limiter", Access.RW, (
            Field("threshold_normal_w", 24, "class 71 threshold_normal, W (all ones: none; "
                                            "never below the floor)", init=_NO_LIMIT_W),
            Field("min_over_s", 16, "class 71 min_over_threshold_duration, s", init=60),
            Field("min_under_s", 16, "class 71 min_under_threshold_duration, s", init=60),
        ), "class 71 limiter", **_LIMITER_GUARD),
        Register("interlock_emergency", Access.RW, (
            Field("threshold_emergency_w", 24, "class 71 threshold_emergency, W",
                  init=_NO_LIMIT_W),
            Field("activation_s", 32, "emergency profile activation time, UTC seconds"),
            Field("duration_s", 24, "emergency profile duration, s (0: none)"),
        ), "class 71 emergency profile", **_LOAD_MANAGEMENT_GUARD),
        Register("interlock_aux", Access.RW, (
            Field("delay_window_s", 16, "auxiliary requests take effect after a per-meter "
                                        "part of this window, s", init=1800),
        ), "auxiliary load control", **_LOAD_MANAGEMENT_GUARD),
    )

    def __init__(self, *, meter_id: int, parameters: InterlockParameters = InterlockParameters()):
        self._meter_id = meter_id
        self._parameters = parameters
        members = {
            "request": In(stream.Signature(Request, always_ready=True)),
            "event": Out(stream.Signature(InterlockEvent, always_ready=True)),
            "tick_ms": In(1),
            "utc_seconds": In(32),
            "button": In(1),
            "isolate": In(1),
            "aux_override_button": In(1),
            "active_power": In(stream.Signature(signed(32), always_ready=True)),
            "priority_current": In(stream.Signature(unsigned(32), always_ready=True)),
            "main_relay": Out(RelaySignature()),
            "priority_relay": Out(RelaySignature()),
            "aux_level": Out(AuxLevel),
            "state": Out(DisconnectState),
            "relay_alarm": Out(1),
            **register_ports(self.REGISTERS),
        }
        # Settings read their reset values until a register bank drives them, so the
        # interlock on its own (tests, proofs) behaves as a fresh meter.
        for register in self.REGISTERS:
            if register.access is Access.RW:
                members[register.name] = In(register.layout, init=register.field_inits)
        super().__init__(members)

    @property
    def parameters(self) -> InterlockParameters:
        return self._parameters

    # The rules the proofs name, one method each, so that a test's deliberately broken
    # variant can remove one and show its proof fails without it.

    def _isolation_holds(self, latched):
        """Whether the isolation latch (or the switch, before the latch has seen it)
        holds the relays open."""
        return latched | self.isolate

    def _verified(self, request):
        """Whether the security unit verified ``request``."""
        return request.authenticated

    def _cooldown_refuses(self, cooling_down):
        """Whether a remote switching request is refused as too early."""
        return cooling_down

    def _sources_agree(self, other_source_waits):
        """Whether a remote disconnect takes effect: the other source asked first."""
        return other_source_waits

    def _armed_state(self):
        """Where a remote reconnect leaves the main circuit (control_mode 1: armed)."""
        return DisconnectState.READY_FOR_RECONNECTION

    def _priority_wanted(self, priority_on, state):
        """Whether the priority relay should be closed, isolation apart: it ignores
        the main circuit's state, so remote disconnect never opens it."""
        return priority_on

    def elaborate(self, platform):
        m = Module()
        p = self._parameters
        request = self.request.payload

        # --- Time: the interlock's second, and the two relays' switching budget.
        tick_s = Signal()
        ms_in_second = Signal(range(p.ms_per_second))
        m.d.comb += tick_s.eq(self.tick_ms & (ms_in_second == p.ms_per_second - 1))
        with m.If(tick_s):
            m.d.sync += ms_in_second.eq(0)
        with m.Elif(self.tick_ms):
            m.d.sync += ms_in_second.eq(ms_in_second + 1)

        # --- Parts.
        m.submodules.main = main = LatchingRelayDriver(pulse_ms=p.relay_pulse_ms,
                                                       settle_ms=p.relay_settle_ms)
        m.submodules.priority = priority = LatchingRelayDriver(pulse_ms=p.relay_pulse_ms,
                                                               settle_ms=p.relay_settle_ms)
        m.submodules.button = button = Debouncer(stable_ms=p.debounce_ms)
        m.submodules.override_button = override_button = Debouncer(stable_ms=p.debounce_ms)
        m.submodules.limiter = limiter = Limiter(floor_w=p.limiter_floor_w)
        m.submodules.priority_limiter = priority_limiter = SustainedThreshold(
            shape=unsigned(32), threshold_shape=unsigned(32))
        m.submodules.aux = aux = AuxLoadControl(meter_id=self._meter_id,
                                                override_s=p.aux_override_s)
        for part in (main, priority, button, override_button):
            m.d.comb += part.tick_ms.eq(self.tick_ms)
        for part in (limiter, priority_limiter, aux):
            m.d.comb += part.tick_s.eq(tick_s)
        m.d.comb += [
            button.raw.eq(self.button),
            override_button.raw.eq(self.aux_override_button),
            limiter.utc_seconds.eq(self.utc_seconds),
            limiter.threshold_normal_w.eq(self.interlock_limiter.threshold_normal_w),
            limiter.min_over_s.eq(self.interlock_limiter.min_over_s),
            limiter.min_under_s.eq(self.interlock_limiter.min_under_s),
            limiter.threshold_emergency_w.eq(self.interlock_emergency.threshold_emergency_w),
            limiter.emergency_activation_s.eq(self.interlock_emergency.activation_s),
            limiter.emergency_duration_s.eq(self.interlock_emergency.duration_s),
            priority_limiter.threshold.eq(p.priority_limit_ma),
            priority_limiter.min_over_s.eq(p.priority_sustain_s),
            priority_limiter.min_under_s.eq(0),
            aux.delay_window_s.eq(self.interlock_aux.delay_window_s),
            self.aux_level.eq(aux.level),
        ]
        wiring.connect(m, wiring.flipped(self.active_power), limiter.active_power)
        wiring.connect(m, wiring.flipped(self.priority_current), priority_limiter.sample)

        operations = Signal(8)
        period_s = Signal(range(p.budget_period_s))
        operated = main.operated + priority.operated
        with m.If(tick_s & (period_s == p.budget_period_s - 1)):
            m.d.sync += [period_s.eq(0), operations.eq(operated)]
        with m.Else():
            m.d.sync += period_s.eq(period_s + tick_s)
            m.d.sync += operations.eq(Mux(operations + operated > 255, 255, operations + operated))
        budget = _clamp(self.interlock_switching.relay_budget, 0, p.budget_max)
        budget_left = operations < budget

        # --- State. Until the first cycle has passed, the states are the relays' sensed
        # positions: a power cut never switches anything by itself.
        booted = Signal()
        state_kept = Signal(DisconnectState)
        priority_kept = Signal()
        m.d.sync += booted.eq(1)
        with m.If(booted):
            m.d.comb += self.state.eq(state_kept)
        with m.Elif(self.main_relay.closed):
            m.d.comb += self.state.eq(DisconnectState.CONNECTED)
        with m.Else():
            m.d.comb += self.state.eq(DisconnectState.DISCONNECTED)
        priority_on = Mux(booted, priority_kept, self.priority_relay.closed)

        next_state = Signal(DisconnectState)
        next_priority_on = Signal()
        m.d.comb += [next_state.eq(self.state), next_priority_on.eq(priority_on)]
        m.d.sync += [state_kept.eq(next_state), priority_kept.eq(next_priority_on)]
        state_changes = next_state != self.state

        # Cooldown: any state change, and power-up (the reset value), restart it.
        cooldown_left_s = Signal(16, init=p.cooldown_min_s)
        cooling_down = cooldown_left_s != 0
        with m.If(state_changes):
            m.d.sync += cooldown_left_s.eq(_clamp(self.interlock_switching.cooldown_s,
                                                  p.cooldown_min_s, p.cooldown_max_s))
        with m.Elif(tick_s & cooling_down):
            m.d.sync += cooldown_left_s.eq(cooldown_left_s - 1)

        # --- Isolation: latched at once by the switch; released only by the switch,
        # once it has been back for the debounce time.
        isolated = Signal()
        isolation_logged = Signal()
        back_ms = Signal(range(p.debounce_ms + 1))
        isolated_now = self._isolation_holds(isolated)
        with m.If(self.isolate):
            m.d.sync += [isolated.eq(1), back_ms.eq(0)]
        with m.Elif(isolated & self.tick_ms & (back_ms != p.debounce_ms)):
            m.d.sync += back_ms.eq(back_ms + 1)
        release_due = isolated & isolation_logged & ~self.isolate & (back_ms == p.debounce_ms)

        # --- Relays: nothing closes while isolated, whatever the state says.
        m.d.comb += [
            main.closed_wanted.eq((self.state == DisconnectState.CONNECTED) & ~isolated_now),
            priority.closed_wanted.eq(self._priority_wanted(priority_on, self.state)
                                      & ~isolated_now),
        ]
        for driver, relay in ((main, self.main_relay), (priority, self.priority_relay)):
            m.d.comb += [
                relay.close.eq(driver.relay.close & ~isolated_now),
                relay.open.eq(driver.relay.open),
                driver.relay.closed.eq(relay.closed),
            ]
        m.d.comb += self.relay_alarm.eq(main.mismatch | priority.mismatch)

        # --- Happenings wait here for a cycle without a request.
        press_waits = Signal()
        override_waits = Signal()
        power_up_waits = Signal(init=1)
        faults = []  # (target, waits, welded) of each relay
        with m.If(button.pressed):
            m.d.sync += press_waits.eq(1)
        with m.If(override_button.pressed):
            m.d.sync += override_waits.eq(1)
        for driver, target in ((main, Target.MAIN), (priority, Target.PRIORITY)):
            was_mismatched = Signal(name=f"{target.name.lower()}_was_mismatched")
            waits = Signal(name=f"{target.name.lower()}_fault_waits")
            welded = Signal(name=f"{target.name.lower()}_fault_welded")
            m.d.sync += was_mismatched.eq(driver.mismatch)
            with m.If(driver.mismatch & ~was_mismatched):
                m.d.sync += [waits.eq(1), welded.eq(driver.welded)]
            faults.append((target, waits, welded))

        # --- Two sources: each source's remote disconnect waits in its own slot, so
        # one compromised key cannot displace the other's request.
        pending_layout = data.StructLayout({
            "valid": 1, "request_id": 16, "age_s": range(p.two_source_window_s + 1)})
        pending = {source: Signal(pending_layout, name=f"pending_{source.slot_name}")
                   for source in TWO_SOURCES}
        own_repeats = Const(0)
        other_waits = Const(0)
        for source, other in zip(TWO_SOURCES, reversed(TWO_SOURCES)):
            asks = request.authority == source
            own_repeats |= asks & pending[source].valid & (
                pending[source].request_id == request.request_id)
            other_waits |= asks & pending[other].valid & (
                pending[other].request_id == request.request_id)
            slot = pending[source]
            with m.If(tick_s & slot.valid):
                with m.If(slot.age_s == p.two_source_window_s):
                    m.d.sync += slot.valid.eq(0)
                with m.Else():
                    m.d.sync += slot.age_s.eq(slot.age_s + 1)
        keep_pending = Signal()  # the request waits for its second source

        # --- Deciding: a request if there is one, else the first happening waiting.
        answer = Signal(InterlockEvent)
        logging = Signal()
        m.d.comb += [
            answer.seconds.eq(self.utc_seconds),
            answer.state.eq(next_state),
            answer.accepted.eq((answer.reason == Reason.DONE) | (answer.reason == Reason.DELAYED)),
        ]
        with m.If(self.request.valid):
            m.d.comb += [
                logging.eq(1),
                answer.from_request.eq(1),
                answer.authority.eq(request.authority),
                answer.authenticated.eq(request.authenticated),
                answer.action.eq(request.action),
                answer.target.eq(request.target),
                answer.request_id.eq(request.request_id),
                answer.counter.eq(request.counter),
            ]
            self._decide_request(m, request, answer.reason, next_state, aux.schedule,
                                 isolated_now=isolated_now, cooling_down=cooling_down,
                                 own_repeats=own_repeats, other_waits=other_waits,
                                 keep_pending=keep_pending)
        with m.Else():
            m.d.comb += [answer.authority.eq(Authority.LOCAL), answer.target.eq(Target.MAIN)]
            with m.If(isolated & ~isolation_logged):
                m.d.comb += [logging.eq(1), answer.action.eq(Action.ISOLATE),
                             next_state.eq(DisconnectState.DISCONNECTED),
                             next_priority_on.eq(0)]
                m.d.sync += isolation_logged.eq(1)
            with m.Elif(release_due):
                m.d.comb += [logging.eq(1), answer.action.eq(Action.ISOLATION_RELEASED)]
                m.d.sync += [isolated.eq(0), isolation_logged.eq(0)]
            with m.Elif(limiter.over & (self.state == DisconnectState.CONNECTED)):
                m.d.comb += [logging.eq(1), answer.action.eq(Action.LIMITER_TRIP),
                             next_state.eq(DisconnectState.READY_FOR_RECONNECTION)]
            with m.Elif(priority_limiter.over & priority_on):
                m.d.comb += [logging.eq(1), answer.action.eq(Action.PRIORITY_TRIP),
                             answer.target.eq(Target.PRIORITY), next_priority_on.eq(0)]
            with m.Elif(press_waits):
                # One press completes one reconnection: the main circuit's first.
                m.d.comb += [logging.eq(1), answer.action.eq(Action.MANUAL_RECONNECT)]
                m.d.sync += press_waits.eq(0)
                main_armed = self.state == DisconnectState.READY_FOR_RECONNECTION
                with m.If(~main_armed & ~priority_on):
                    m.d.comb += answer.target.eq(Target.PRIORITY)
                with m.If(isolated_now):
                    m.d.comb += answer.reason.eq(Reason.ISOLATED)
                with m.Elif(~main_armed & priority_on):
                    m.d.comb += answer.reason.eq(Reason.WRONG_STATE)
                with m.Elif(~budget_left):
                    m.d.comb += answer.reason.eq(Reason.BUDGET_SPENT)
                with m.Elif(main_armed):
                    m.d.comb += next_state.eq(DisconnectState.CONNECTED)
                with m.Else():
                    m.d.comb += next_priority_on.eq(1)
            with m.Elif(override_waits):
                m.d.comb += [logging.eq(1), answer.action.eq(Action.AUX_OVERRIDE),
                             answer.target.eq(Target.AUX), aux.override.eq(1)]
                m.d.sync += override_waits.eq(0)
            for target, waits, welded in faults:
                with m.Elif(waits):
                    m.d.comb += [logging.eq(1), answer.action.eq(Action.RELAY_FAULT),
                                 answer.target.eq(target),
                                 answer.reason.eq(Mux(welded, Reason.CONTACTS_WELDED,
                                                      Reason.CONTACTS_MISMATCH))]
                    m.d.sync += waits.eq(0)
            with m.Elif(power_up_waits):
                m.d.comb += [logging.eq(1), answer.action.eq(Action.POWER_UP)]
                m.d.sync += power_up_waits.eq(0)

        # A pending disconnect is stored after expiry (it restarts its window) and
        # forgotten at any state change: it was asked of a state that has passed.
        for source in TWO_SOURCES:
            with m.If(keep_pending & (request.authority == source)):
                m.d.sync += [pending[source].valid.eq(1),
                             pending[source].request_id.eq(request.request_id),
                             pending[source].age_s.eq(0)]
            with m.If(state_changes):
                m.d.sync += pending[source].valid.eq(0)

        m.d.sync += [self.event.valid.eq(logging), self.event.payload.eq(answer)]

        status = self.interlock_status
        m.d.comb += [
            status.state.eq(self.state),
            status.isolated.eq(isolated),
            status.main_closed.eq(self.main_relay.closed),
            status.main_fault.eq(main.mismatch),
            status.main_welded.eq(main.welded),
            status.priority_on.eq(priority.closed_wanted),
            status.priority_closed.eq(self.priority_relay.closed),
            status.priority_fault.eq(priority.mismatch),
            status.limiter_over.eq(limiter.over),
            status.emergency_active.eq(limiter.emergency_active),
            status.aux_level.eq(aux.level),
            status.aux_scheduled.eq(aux.scheduled),
            status.aux_overridden.eq(aux.overridden),
            status.pending_supplier.eq(pending[Authority.SUPPLIER].valid),
            status.pending_broker.eq(pending[Authority.BROKER].valid),
            status.cooldown_remaining_s.eq(cooldown_left_s),
            status.operations.eq(operations),
        ]
        return m

    def _decide_request(self, m, request, reason, next_state, aux_schedule, *, isolated_now,
                        cooling_down, own_repeats, other_waits, keep_pending):
        """The answer to a request: ``reason`` (``DONE`` or ``DELAYED`` if accepted) and
        its effect on ``next_state``, the aux schedule and the two-source slots."""
        with m.If(~self._verified(request)):
            m.d.comb += reason.eq(Reason.UNAUTHENTICATED)
        with m.Else():
            with m.Switch(request.action):
                for action, (target, authorities) in REQUEST_RULES.items():
                    with m.Case(action):
                        permitted = Const(0)
                        for authority in authorities:
                            permitted |= request.authority == authority
                        with m.If(~permitted):
                            m.d.comb += reason.eq(Reason.FORBIDDEN)
                        with m.Elif(request.target != target):
                            protected = (request.target == Target.PRIORITY
                                         if action is Action.REMOTE_DISCONNECT else Const(0))
                            m.d.comb += reason.eq(Mux(protected, Reason.PRIORITY_PROTECTED,
                                                      Reason.BAD_REQUEST))
                        with m.Else():
                            self._carry_out(m, action, reason, next_state, aux_schedule,
                                            isolated_now=isolated_now,
                                            cooling_down=cooling_down,
                                            own_repeats=own_repeats, other_waits=other_waits,
                                            keep_pending=keep_pending)
                with m.Default():
                    m.d.comb += reason.eq(Reason.BAD_REQUEST)

    def _carry_out(self, m, action, reason, next_state, aux_schedule, *, isolated_now,
                   cooling_down, own_repeats, other_waits, keep_pending):
        """A permitted request for the right circuit: what it does in this state."""
        if action in _AUX_LEVELS:
            m.d.comb += [reason.eq(Reason.DELAYED), aux_schedule.valid.eq(1),
                         aux_schedule.payload.eq(_AUX_LEVELS[action])]
            return
        state = self.state
        with m.If(isolated_now):
            m.d.comb += reason.eq(Reason.ISOLATED)
        if action in (Action.REMOTE_DISCONNECT, Action.REMOTE_RECONNECT):
            with m.Elif(self._cooldown_refuses(cooling_down)):
                m.d.comb += reason.eq(Reason.COOLDOWN)
        if action is Action.REMOTE_DISCONNECT:
            with m.Elif(state == DisconnectState.DISCONNECTED):
                m.d.comb += reason.eq(Reason.WRONG_STATE)
            with m.Elif(self._sources_agree(other_waits)):
                m.d.comb += next_state.eq(DisconnectState.DISCONNECTED)
            with m.Elif(own_repeats):
                m.d.comb += reason.eq(Reason.SAME_SOURCE)
            with m.Else():
                m.d.comb += [reason.eq(Reason.AWAITING_SECOND_SOURCE), keep_pending.eq(1)]
        elif action is Action.REMOTE_RECONNECT:
            with m.Elif(state != DisconnectState.DISCONNECTED):
                m.d.comb += reason.eq(Reason.WRONG_STATE)
            with m.Else():
                m.d.comb += next_state.eq(self._armed_state())
        else:  # LOCAL_DISCONNECT
            with m.Elif(state != DisconnectState.CONNECTED):
                m.d.comb += reason.eq(Reason.WRONG_STATE)
            with m.Else():
                m.d.comb += next_state.eq(DisconnectState.READY_FOR_RECONNECTION)


def _clamp(value, low: int, high: int):
    """``value`` limited to ``low..high``: settings out of bounds take the nearest bound."""
    return Mux(value < low, low, Mux(value > high, high, value))
