"""The meter's trust anchors: one certificate per slot of (role, key usage), kept
durably by the control module.

A slot is filled at commissioning (every certificate validated to the root) and
afterwards replaced only by a REPLACE_ANCHOR command signed under the current
signing anchor of the slot's own role, or of the recovery role; the new
certificate must be valid, unrevoked and chain to the current root. The root
itself is replaced only by recovery, since a CA key does not sign commands.
"""

import datetime
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .certificates import (CertificateInfo, format_identity, inspect, load_certificate,
                           strict_parsing)
from ..durable import write_durably
from .errors import Reason, Refused
from .roles import Role, Usage
from .validation import validate_path

__all__ = ["Slot", "SLOTS", "Credentials", "TrustAnchors"]

Slot = tuple[Role, Usage]
#: Every slot a commissioned meter fills.
SLOTS: tuple[Slot, ...] = (
    (Role.ROOT, Usage.CERTIFICATION), (Role.RECOVERY, Usage.SIGNING),
    *((role, usage) for role in (Role.BROKER, Role.SUPPLIER, Role.NETWORK, Role.MANUFACTURER)
      for usage in (Usage.SIGNING, Usage.KEY_AGREEMENT)))


def _slot_name(slot: Slot) -> str:
    return f"{slot[0].value}/{slot[1].value}"


@dataclass(frozen=True)
class Credentials:
    """A certificate with what proves it: its CA certificates and current CRLs.

    On the wire (a REPLACE_ANCHOR payload), a sequence of items, each a kind byte
    (1 certificate, 2 CRL), a 2-byte length and that many bytes of DER; the first
    item is the certificate offered."""

    certificate: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    _ITEM = struct.Struct(">BH")

    def to_bytes(self) -> bytes:
        items = [(1, self.certificate), *((1, c) for c in self.intermediates),
                 *((2, crl) for crl in self.crls)]
        encoded = b""
        for kind, item in items:
            der = item.public_bytes(serialization.Encoding.DER)
            encoded += self._ITEM.pack(kind, len(der)) + der
        return encoded

    @classmethod
    def parse(cls, data: bytes) -> "Credentials":
        certificates, crls, offset = [], [], 0
        while offset < len(data):
            if len(data) - offset < cls._ITEM.size:
                raise Refused(Reason.MALFORMED, f"credentials end inside an item header at {offset}")
            kind, length = cls._ITEM.unpack_from(data, offset)
            offset += cls._ITEM.size
            der = bytes(data[offset:offset + length])
            if len(der) != length:
                raise Refused(Reason.MALFORMED, f"a credentials item of {length} bytes has only "
                                                f"{len(der)}")
            offset += length
            if kind == 1:
                certificates.append(load_certificate(der))
            elif kind == 2:
                crls.append(_load_crl(der))
            else:
                raise Refused(Reason.MALFORMED, f"unknown credentials item kind {kind}")
        if not certificates:
            raise Refused(Reason.MALFORMED, "the credentials hold no certificate")
        return cls(certificates[0], tuple(certificates[1:]), tuple(crls))


def _load_crl(der: bytes) -> x509.CertificateRevocationList:
    with strict_parsing("not a CRL"):
        crl = x509.load_der_x509_crl(der)
        # Parse now what validation reads, so that damage is MALFORMED here.
        crl.issuer, crl.last_update_utc, crl.next_update_utc, list(crl)
        return crl


def _check_identities(anchors: Mapping[Slot, CertificateInfo]) -> None:
    """A command's originator names one signing anchor: no two roles share an identity."""
    roles_by_identity: dict[int, set[Role]] = {}
    for (role, usage), info in anchors.items():
        if usage is Usage.SIGNING:
            roles_by_identity.setdefault(info.identity, set()).add(role)
    shared = {identity: roles for identity, roles in roles_by_identity.items() if len(roles) > 1}
    if shared:
        identity, roles = next(iter(shared.items()))
        names = " and ".join(sorted(role.value for role in roles))
        raise Refused(Reason.WRONG_ROLE, f"the signing anchors of {names} "
                                         f"would share the identity {format_identity(identity)}")


class TrustAnchors:
    """The anchors in one JSON file, ``{"<role>/<usage>": "<PEM>"}``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            content = json.loads(self.path.read_text())
            self._anchors = {slot: inspect(load_certificate(content[_slot_name(slot)].encode()))
                             for slot in SLOTS}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, Refused) as error:
            raise ValueError(f"{self.path} does not hold the meter's trust anchors: {error}") \
                from None

    @classmethod
    def commission(cls, path: Path, anchors: Mapping[Slot, Credentials], *,
                   at: datetime.datetime) -> "TrustAnchors":
        """Fill every slot, each certificate validated to the root in ``anchors``."""
        missing = [_slot_name(slot) for slot in SLOTS if slot not in anchors]
        if missing:
            raise ValueError(f"commissioning needs every anchor; missing {', '.join(missing)}")
        root = anchors[Role.ROOT, Usage.CERTIFICATION].certificate
        infos = {}
        for slot in SLOTS:
            credentials = anchors[slot]
            info = validate_path(credentials.certificate, credentials.intermediates, root,
                                 credentials.crls, at=at)
            if (info.role, info.usage) != slot:
                raise Refused(Reason.WRONG_ROLE, f"{info.describe()} cannot fill the "
                                                 f"{_slot_name(slot)} slot")
            infos[slot] = info
        _check_identities(infos)
        cls._write(Path(path), {slot: anchors[slot].certificate for slot in SLOTS})
        return cls(path)

    @staticmethod
    def _write(path: Path, certificates: Mapping[Slot, x509.Certificate]) -> None:
        write_durably(path, json.dumps(
            {_slot_name(slot): certificate.public_bytes(serialization.Encoding.PEM).decode()
             for slot, certificate in certificates.items()}, indent=1).encode())

    def __getitem__(self, slot: Slot) -> CertificateInfo:
        return self._anchors[slot]

    def signer(self, identity: int) -> CertificateInfo | None:
        """The signing anchor of the party with ``identity``, if the meter trusts one."""
        return next((info for (_, usage), info in self._anchors.items()
                     if usage is Usage.SIGNING and info.identity == identity), None)

    def check_replacement(self, originator: Role, offered: Credentials, *,
                          at: datetime.datetime) -> CertificateInfo:
        """Validate ``offered`` as a new anchor sent by ``originator``; change nothing.
        The slot is the new certificate's own role and usage."""
        root = self._anchors[Role.ROOT, Usage.CERTIFICATION].certificate
        new = inspect(offered.certificate)
        if new.role is Role.ROOT:
            # A new root is self-signed: its own anchor, checked for the profile and dates.
            validate_path(offered.certificate, (), offered.certificate, (), at=at)
        else:
            validate_path(offered.certificate, offered.intermediates, root, offered.crls, at=at)
        slot = (new.role, new.usage)
        if slot not in self._anchors:
            raise Refused(Reason.WRONG_ROLE, f"the meter has no {_slot_name(slot)} anchor slot")
        if originator not in (new.role, Role.RECOVERY):
            raise Refused(Reason.WRONG_ROLE, f"a {originator.value} cannot replace the "
                                             f"{_slot_name(slot)} anchor: only its own role or "
                                             f"recovery")
        _check_identities(self._anchors | {slot: new})
        return new

    def replace(self, new: CertificateInfo) -> None:
        """Put a certificate :meth:`check_replacement` accepted in its slot, durably."""
        updated = self._anchors | {(new.role, new.usage): new}
        self._write(self.path, {slot: info.certificate for slot, info in updated.items()})
        self._anchors = updated
