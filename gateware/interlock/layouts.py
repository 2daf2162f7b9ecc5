"""What goes in and out of the load-switch interlock: requests from the security
unit, events for the log, and the enumerations both use.

Values of :class:`DisconnectState` are DLMS/COSEM interface class 70's
``control_state``; :class:`Reason` codes say why each request or happening ended as
it did (docs/interlock.md lists them with their reasons).
"""

from amaranth.lib import data, enum

from ..security.authority import Authority

__all__ = ["DisconnectState", "Action", "Target", "Reason", "AuxLevel", "Request",
           "InterlockEvent"]


class DisconnectState(enum.Enum, shape=2):
    """Class 70 ``control_state``."""

    DISCONNECTED = 0            #: open; a remote reconnect arms it
    CONNECTED = 1               #: closed
    READY_FOR_RECONNECTION = 2  #: open; the local button closes it


class Action(enum.Enum, shape=4):
    """What a request asks for, or what happened on the meter (``event.action``).

    Values below 8 are the actions a request may carry; the others are happenings
    the interlock decides or observes by itself, never requested.
    """

    REMOTE_DISCONNECT = 0   #: class 70 remote_disconnect; needs two sources
    REMOTE_RECONNECT = 1    #: class 70 remote_reconnect: only arms (ready_for_reconnection)
    LOCAL_DISCONNECT = 2    #: the meter's control module (prepayment): to ready_for_reconnection
    AUX_OFF = 3             #: switch the auxiliary load off
    AUX_REDUCE = 4          #: reduce the auxiliary load
    AUX_RESTORE = 5         #: restore the auxiliary load to full
    POWER_UP = 8            #: the interlock started and adopted the sensed relay states
    ISOLATE = 9             #: the isolation switch was thrown: relays open, latched
    ISOLATION_RELEASED = 10  #: the isolation switch was put back: to disconnected
    LIMITER_TRIP = 11       #: class 71 over-threshold action: local disconnect
    PRIORITY_TRIP = 12      #: sustained overcurrent on the priority circuit
    MANUAL_RECONNECT = 13   #: the local button (class 70 manual_reconnect)
    AUX_OVERRIDE = 14       #: the consumer's override button restored the auxiliary load
    RELAY_FAULT = 15        #: contact feedback disagrees with the relay's last command


class Target(enum.Enum, shape=2):
    """Which circuit a request or event concerns."""

    MAIN = 0        #: the main supply relay (class 70 disconnect control)
    PRIORITY = 1    #: the priority circuit's relay, never remotely disconnected
    AUX = 2         #: the auxiliary load control output


class Reason(enum.Enum, shape=4):
    """Why a request or happening ended as it did (``event.reason``)."""

    DONE = 0                    #: accepted and carried out
    AWAITING_SECOND_SOURCE = 1  #: first of two sources for a remote disconnect: refused, kept
    UNAUTHENTICATED = 2         #: not verified by the security unit
    FORBIDDEN = 3               #: this authority may not ask for this action
    COOLDOWN = 4                #: too soon after the last state change
    ISOLATED = 5                #: the isolation latch is set
    WRONG_STATE = 6             #: nothing to do in the present state
    SAME_SOURCE = 7             #: the pending disconnect's own authority asked again
    PRIORITY_PROTECTED = 8      #: remote disconnect aimed at the priority circuit
    BUDGET_SPENT = 9            #: the relay switching budget of the period is used up
    BAD_REQUEST = 10            #: not a request action, or the wrong target for it
    DELAYED = 11                #: accepted; takes effect after the meter's aux delay
    CONTACTS_MISMATCH = 12      #: a relay's contacts stayed open when commanded closed
    CONTACTS_WELDED = 13        #: a relay's contacts stayed closed when commanded open


class AuxLevel(enum.Enum, shape=2):
    """What the auxiliary load (EV charger, heat pump) may draw."""

    FULL = 0
    REDUCED = 1
    OFF = 2


class Request(data.Struct):
    """A switching request, as the security unit hands it over once verified."""

    authority: Authority    #: the key slot that verified it (class Authority)
    authenticated: 1        #: 1: tag verified and counter fresh; 0: must change nothing
    action: Action
    target: Target
    request_id: 16          #: the two sources of a disconnect name the same id
    counter: 32             #: the command's invocation counter, for the log


class InterlockEvent(data.Struct):
    """One logged request or happening (98 bits)."""

    seconds: 32             #: UTC seconds when it was decided
    authority: Authority    #: the request's authority; LOCAL for happenings
    authenticated: 1        #: the request's flag; 0 for happenings
    from_request: 1         #: 1: an answer to a request; 0: a happening on the meter
    action: Action
    target: Target
    request_id: 16          #: the request's; 0 for happenings
    counter: 32             #: the request's invocation counter; 0 for happenings
    accepted: 1             #: 1: carried out (or scheduled); 0: refused
    reason: Reason
    state: DisconnectState  #: class 70 control_state after it
