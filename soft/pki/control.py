"""The meter's control module: where signed commands are checked and dispatched.

:meth:`ControlModule.handle` takes a command's bytes and either returns the reply
payload or raises :class:`Refused`. The checks, in order, and all before anything
changes:

1. it parses (:attr:`Reason.MALFORMED`) and is addressed to this meter
   (:attr:`Reason.WRONG_RECIPIENT`);
2. a signing anchor holds the originator's identity (:attr:`Reason.UNKNOWN_ORIGINATOR`),
   is within its validity period (:attr:`Reason.EXPIRED`) and its key verifies the signature (:attr:`Reason.BAD_SIGNATURE`);
3. the anchor's role has the message's right on its data object
   (:attr:`Reason.NOT_PERMITTED`), and the payload has the message's length
   (:attr:`Reason.MALFORMED`);
4. a critical message carries the broker's MAC (:attr:`Reason.BROKER_MAC_MISSING`),
   and it verifies (:attr:`Reason.BAD_BROKER_MAC`);
5. the counter is above the originator's last (:attr:`Reason.REPLAYED`);
6. the meter has a handler for it (:attr:`Reason.UNSUPPORTED`), and for
   REPLACE_ANCHOR the new certificate is acceptable.

Then the counter is written durably, and only then the handler runs. A handler
that fails has still used up the counter (as the gateware's commands do), so a
verified command can never be played twice. :meth:`ControlModule.handle_batch`
answers commands that arrived together with one durable write for all their
counters (group commit): the disk's fsync, not the checks, limits a meter that
writes each counter alone. A new key-agreement anchor changes the
slot keys agreed with it: ``on_keys_changed(old, new)`` then carries them to the
gateware (:meth:`.handlers.GatewareLink.rekey`).
"""

import datetime
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ..security import KeySet
from .access import MessageCode, check_access
from .agreement import broker_mac_key, derive_keyset
from .anchors import Credentials, TrustAnchors
from .certificates import CertificateInfo, format_identity
from .counters import OriginatorCounters
from .errors import Reason, Refused
from .message import SignedCommand
from .roles import GATEWARE_SLOT, Role, Usage
from .validation import check_validity

__all__ = ["Handler", "ControlModule", "ANCHORS_FILE", "COUNTERS_FILE"]

#: A message's handler: the verified command and the originator's role in, the reply
#: payload out.
Handler = Callable[[SignedCommand, Role], bytes]
ANCHORS_FILE = "anchors.json"
COUNTERS_FILE = "counters.json"


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class ControlModule:
    """One meter's command path, its state (anchors, counters) in ``state_dir``,
    which commissioning (:meth:`TrustAnchors.commission`) has filled."""

    def __init__(self, state_dir: Path, *, identity: int,
                 key_agreement_key: ec.EllipticCurvePrivateKey,
                 handlers: Mapping[MessageCode, Handler],
                 on_keys_changed: Callable[[KeySet, KeySet], None] = lambda old, new: None,
                 clock: Callable[[], datetime.datetime] = _utc_now):
        state_dir = Path(state_dir)
        self.identity = identity
        self.anchors = TrustAnchors(state_dir / ANCHORS_FILE)
        self.counters = OriginatorCounters(state_dir / COUNTERS_FILE)
        self._key_agreement_key = key_agreement_key
        self._handlers = dict(handlers)
        self._on_keys_changed = on_keys_changed
        self._clock = clock
        self._broker_mac_key = self._derive_broker_mac_key()

    def _derive_broker_mac_key(self) -> bytes:
        return broker_mac_key(self._key_agreement_key,
                              self.anchors[Role.BROKER, Usage.KEY_AGREEMENT], self.identity)

    def keyset(self) -> KeySet:
        """The gateware slots' keys, agreed with the parties the anchors name:
        commissioning provisions them (``provision(meter, control.keyset())``)."""
        parties = {role: self.anchors[role, Usage.KEY_AGREEMENT]
                   for role in set(GATEWARE_SLOT.values())}
        return derive_keyset(self._key_agreement_key, self.identity, parties)

    def handle(self, data: bytes) -> bytes:
        """Check the command in ``data``, run it, and return the reply payload."""
        (outcome,) = self.handle_batch([data])
        if isinstance(outcome, Refused):
            raise outcome
        return outcome

    def handle_batch(self, batch: Sequence[bytes]) -> "list[bytes | Refused]":
        """Answer commands that arrived together, in order: each reply payload, or the
        :class:`Refused` of a command refused. Each is checked as :meth:`handle`
        checks it (a counter must also be above its originator's earlier ones in the
        batch); then every accepted counter goes to disk in one durable write, and
        only then do the handlers run. A trust-anchor replacement changes what the
        commands after it are checked against, so it closes a group and the rest
        form the next."""
        outcomes: "list[bytes | Refused]" = []
        remaining = list(batch)
        while remaining:
            group: "list[tuple[SignedCommand, CertificateInfo] | Refused]" = []
            accepted: dict[int, int] = {}
            while remaining:
                try:
                    command, signer = self._check(remaining.pop(0), accepted)
                except Refused as refusal:
                    group.append(refusal)
                    continue
                accepted[command.originator] = command.counter
                group.append((command, signer))
                if command.code is MessageCode.REPLACE_ANCHOR:
                    break
            self.counters.advance_all(accepted)
            outcomes += [item if isinstance(item, Refused) else self._run(*item) for item in group]
        return outcomes

    def _check(self, data: bytes,
               accepted: Mapping[int, int]) -> "tuple[SignedCommand, CertificateInfo]":
        """Every check, in the order of the module documentation; ``accepted`` holds
        the counters of this group's commands accepted so far."""
        command = SignedCommand.parse(data)
        if command.recipient != self.identity:
            raise Refused(Reason.WRONG_RECIPIENT, f"the command is for "
                          f"{format_identity(command.recipient)}, this meter is "
                          f"{format_identity(self.identity)}")
        signer = self.anchors.signer(command.originator)
        if signer is None:
            raise Refused(Reason.UNKNOWN_ORIGINATOR, f"no signing anchor of this meter is "
                          f"{format_identity(command.originator)}")
        check_validity(signer, self._clock())
        if not command.verify_signature(signer.public_key):
            raise Refused(Reason.BAD_SIGNATURE, f"the signature on {command.code.name} (counter "
                          f"{command.counter}) is not by {signer.describe()}")
        message = check_access(signer.role, command.code, command.payload)
        if message.critical:
            if command.broker_mac is None:
                raise Refused(Reason.BROKER_MAC_MISSING, f"{command.code.name} is critical and "
                              f"needs the access-control broker's MAC")
            if not command.verify_broker_mac(self._broker_mac_key):
                raise Refused(Reason.BAD_BROKER_MAC, f"the broker MAC on {command.code.name} "
                              f"(counter {command.counter}) does not verify")
        self.counters.check(command.originator, command.counter,
                            above=accepted.get(command.originator, 0))
        if command.code is MessageCode.REPLACE_ANCHOR:
            self.anchors.check_replacement(signer.role, Credentials.parse(command.payload),
                                           at=self._clock())
        elif command.code not in self._handlers:
            raise Refused(Reason.UNSUPPORTED, f"this meter has no handler for {command.code.name}")
        return command, signer

    def _run(self, command: SignedCommand, signer: CertificateInfo) -> bytes:
        """A checked command whose counter is on disk."""
        if command.code is MessageCode.REPLACE_ANCHOR:
            new = self.anchors.check_replacement(signer.role, Credentials.parse(command.payload),
                                                 at=self._clock())
            old_keys = self.keyset()
            self.anchors.replace(new)
            if new.usage is Usage.KEY_AGREEMENT:
                self._broker_mac_key = self._derive_broker_mac_key()
                self._on_keys_changed(old_keys, self.keyset())
            return b""
        return self._handlers[command.code](command, signer.role)
