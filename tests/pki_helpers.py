"""A demonstration PKI and a commissioned control module for the PKI tests."""

import datetime
from pathlib import Path

from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.soft.pki.access import MESSAGES, MessageCode
from refmeter.soft.pki.agreement import BROKER_MAC_PURPOSE, derive_key
from refmeter.soft.pki.anchors import TrustAnchors
from refmeter.soft.pki.control import ANCHORS_FILE, ControlModule
from refmeter.soft.pki.demo import PARTY_IDENTITIES, DemoPki
from refmeter.soft.pki.message import SignedCommand
from refmeter.soft.pki.roles import Role, Usage

#: The time the tests' PKI is made at, and the time they run at (a day later).
ISSUED = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
NOW = ISSUED + datetime.timedelta(days=1)


def commission(pki: DemoPki, state: Path, handlers=None, at=NOW) -> ControlModule:
    """A control module for the PKI's meter in ``state``, commissioned with its anchors
    at time ``at``."""
    state.mkdir(exist_ok=True)
    TrustAnchors.commission(state / ANCHORS_FILE, pki.anchors(), at=at)
    return reopen(pki, state, handlers, clock=lambda: at)


def reopen(pki: DemoPki, state: Path, handlers=None, clock=lambda: NOW,
           on_keys_changed=lambda old, new: None) -> ControlModule:
    """The control module on ``state`` as a restart finds it."""
    return ControlModule(state, identity=DEMO_METER_ID,
                         key_agreement_key=pki.parties[Role.METER, Usage.KEY_AGREEMENT].key,
                         handlers=handlers or {}, clock=clock, on_keys_changed=on_keys_changed)


def command(pki: DemoPki, role: Role, code: MessageCode, counter: int, payload: bytes = b"", *,
            broker_mac: bool | None = None, recipient: int = DEMO_METER_ID) -> SignedCommand:
    """A command signed by ``role``'s signing key; with the broker's MAC when the
    message is critical (or when ``broker_mac`` says so)."""
    signed = SignedCommand.sign(pki.parties[role, Usage.SIGNING].key, code=code,
                                originator=PARTY_IDENTITIES[role], recipient=recipient,
                                counter=counter, payload=payload)
    if MESSAGES[code].critical if broker_mac is None else broker_mac:
        signed = signed.with_broker_mac(broker_key(pki))
    return signed


def broker_key(pki: DemoPki) -> bytes:
    """The broker's side of its MAC key with the meter."""
    meter = pki.parties[Role.METER, Usage.KEY_AGREEMENT].info
    return derive_key(pki.parties[Role.BROKER, Usage.KEY_AGREEMENT].key, meter.public_key,
                      purpose=BROKER_MAC_PURPOSE, remote_identity=PARTY_IDENTITIES[Role.BROKER],
                      meter_identity=meter.identity)
