"""The host's side of the load-switch interlock: its status, switching requests sent
as authenticated commands, and its event log.

The interlock gateware is the final authority on the relays (docs/interlock.md). A
host only *asks*: :func:`request_switch` sends an authenticated command writing
``interlock_request``, which the security unit verifies and hands to the interlock
with the command's key slot and invocation counter; the interlock decides and logs
its answer, which this module reads back. A host without the keys can still ask,
and every such request is refused and logged.
"""

import datetime
from dataclasses import dataclass

from refmeter.gateware.interlock import Action, AuxLevel, DisconnectState, Reason, Target
from refmeter.gateware.interlock.interlock import REQUEST_RULES
from refmeter.gateware.security.authority import Authority

from .device import Meter
from .errors import MeterError
from .registers import RegisterValue
from .ring import NUMBER_MODULUS, read_ring
from .security import KeySet, send_command

__all__ = ["SwitchStatus", "InterlockRecord", "read_switch_status", "read_interlock_events",
           "request_switch"]


@dataclass(frozen=True)
class SwitchStatus:
    """``interlock_status``, decoded."""

    state: DisconnectState
    isolated: bool
    main_closed: bool
    main_fault: bool
    main_welded: bool
    priority_on: bool
    priority_closed: bool
    priority_fault: bool
    limiter_over: bool
    emergency_active: bool
    aux_level: AuxLevel
    aux_overridden: bool
    pending_supplier: bool
    pending_broker: bool
    cooldown_remaining_s: int
    operations: int

    @classmethod
    def decode(cls, raw: RegisterValue) -> "SwitchStatus":
        return cls(state=DisconnectState(raw["state"]), aux_level=AuxLevel(raw["aux_level"]),
                   cooldown_remaining_s=raw["cooldown_remaining_s"],
                   operations=raw["operations"],
                   **{name: bool(raw[name]) for name in (
                       "isolated", "main_closed", "main_fault", "main_welded", "priority_on",
                       "priority_closed", "priority_fault", "limiter_over", "emergency_active",
                       "aux_overridden", "pending_supplier", "pending_broker")})

    def to_json(self) -> dict:
        return {name: (value.name.lower() if isinstance(value, (DisconnectState, AuxLevel))
                       else value) for name, value in vars(self).items()}


@dataclass(frozen=True)
class InterlockRecord:
    """One entry of the interlock's event log: a request's answer, or a happening."""

    number: int                   #: counted from 0 at the meter's power-up (wraps at 2**32)
    time: datetime.datetime       #: UTC, aware, to the second: when it was decided
    from_request: bool            #: an answer to a request (else a happening on the meter)
    authority: Authority          #: the request's key slot (as claimed, if not authenticated)
    authenticated: bool           #: the security unit verified the request
    action: Action
    target: Target
    request_id: int
    counter: int                  #: the request's invocation counter
    accepted: bool
    reason: Reason
    state: DisconnectState        #: class 70 control_state afterwards

    @classmethod
    def decode(cls, number: int, raw: RegisterValue) -> "InterlockRecord":
        return cls(number=number,
                   time=datetime.datetime.fromtimestamp(raw["seconds"], datetime.timezone.utc),
                   from_request=bool(raw["from_request"]), authority=Authority(raw["authority"]),
                   authenticated=bool(raw["authenticated"]), action=Action(raw["action"]),
                   target=Target(raw["target"]), request_id=raw["request_id"],
                   counter=raw["counter"], accepted=bool(raw["accepted"]),
                   reason=Reason(raw["reason"]), state=DisconnectState(raw["state"]))

    def describe(self) -> str:
        """One line for people."""
        outcome = "accepted" if self.accepted else "refused"
        if not self.from_request:
            return (f"{self.action.name.lower()} on the {self.target.name.lower()} circuit: "
                    f"{self.reason.name.lower()}, now {self.state.name.lower()}")
        if not self.authenticated:
            # A request that failed verification carries nothing but its claimed origin.
            return (f"unverified request claiming the {self.authority.slot_name} slot "
                    f"(counter {self.counter}): refused, {self.reason.name.lower()}")
        return (f"{self.action.name.lower()} of the {self.target.name.lower()} circuit, "
                f"request {self.request_id} from {self.authority.slot_name} (counter "
                f"{self.counter}): {outcome}, {self.reason.name.lower()}, now "
                f"{self.state.name.lower()}")

    def to_json(self) -> dict:
        return {"number": self.number, "time": self.time.isoformat(),
                "from_request": self.from_request, "authority": self.authority.slot_name,
                "authenticated": self.authenticated, "action": self.action.name.lower(),
                "target": self.target.name.lower(), "request_id": self.request_id,
                "counter": self.counter, "accepted": self.accepted,
                "reason": self.reason.name.lower(), "state": self.state.name.lower()}


def read_switch_status(meter: Meter) -> SwitchStatus:
    _require_interlock(meter)
    raw = meter.read("interlock_status")
    assert isinstance(raw, RegisterValue)
    return SwitchStatus.decode(raw)


def read_interlock_events(meter: Meter) -> list[InterlockRecord]:
    """Every entry in the interlock's event log, oldest first."""
    _require_interlock(meter)
    return [InterlockRecord.decode(number, raw)
            for number, raw in read_ring(meter, "interlock_event", what="interlock event log")]


def request_switch(meter: Meter, keys: KeySet, authority: Authority, action: Action, *,
                   request_id: int, target: "Target | None" = None) -> InterlockRecord:
    """Ask the interlock for ``action`` by a command under ``authority``'s key and
    return its answer from the event log (accepted or refused, with the reason).

    ``target`` defaults to the circuit the action is for. Raises
    :class:`~refmeter.soft.security.CommandRefused` if the security unit refuses the
    command (the interlock then logs it as an unverified request).
    """
    _require_interlock(meter)
    if action not in REQUEST_RULES:
        raise ValueError(f"{action.name.lower()} is something that happens on the meter, "
                         f"not a request")
    if not 0 <= request_id < 1 << 16:
        raise ValueError(f"a request id is 16 bits, not {request_id}")
    target = REQUEST_RULES[action][0] if target is None else target
    head = int(meter.read("interlock_event_head"))
    counter = send_command(meter, keys, authority, "interlock_request",
                           {"action": action.value, "target": target.value,
                            "request_id": request_id})
    # Happenings may be logged meanwhile: the answer is the new entry with this counter.
    logged = (int(meter.read("interlock_event_head")) - head) % NUMBER_MODULUS
    for number in ((head + offset) % NUMBER_MODULUS for offset in range(logged)):
        meter.write("interlock_event_select", number)
        raw = meter.read("interlock_event_record")
        assert isinstance(raw, RegisterValue)
        record = InterlockRecord.decode(number, raw)
        if record.from_request and record.authority is authority and record.counter == counter:
            return record
    raise MeterError(f"meter at {meter.link.url} accepted the {authority.slot_name} command "
                     f"(counter {counter}) but its interlock log has no answer to it")


def _require_interlock(meter: Meter) -> None:
    if not meter.read("features")["interlock"]:
        raise MeterError(f"meter at {meter.link.url} has no load-switch interlock in its "
                         f"bitstream")
