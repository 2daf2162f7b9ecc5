"""The load-switch interlock (docs/interlock.md): class 70 disconnect control with
cooldown, two-source rule and manual isolation, the priority circuit, the class 71
limiter, auxiliary load control, relay safety and the event log."""

from .interlock import InterlockParameters, LoadSwitchInterlock
from .layouts import Action, AuxLevel, DisconnectState, InterlockEvent, Reason, Request, Target
from .log import InterlockLog
from .relay import LatchingRelayModel, RelaySignature

__all__ = ["InterlockParameters", "LoadSwitchInterlock", "InterlockLog", "Action", "AuxLevel",
           "DisconnectState", "InterlockEvent", "Reason", "Request", "Target", "RelaySignature",
           "LatchingRelayModel"]
