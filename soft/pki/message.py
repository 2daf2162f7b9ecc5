"""The signed command format: what a remote party sends the meter's control module.

=================  ========  ===============================================
version            1 byte    :data:`VERSION`
message code       2 bytes   :class:`~.access.MessageCode`
originator         8 bytes   the sender's identity (its certificate's)
recipient          8 bytes   the meter's EUI-64
counter            8 bytes   the originator's, strictly increasing
payload length     2 bytes
payload            n bytes
signature          64 bytes  ECDSA P-256 / SHA-256 by the originator over all of
                             the above, as r || s (32 bytes each, big-endian)
broker MAC         16 bytes  critical commands: AES-CMAC by the access-control
                             broker over everything before it
=================  ========  ===============================================

All integers big-endian. Whether the MAC is there follows from the length, so a
parser never guesses: anything else is malformed.
"""

import struct
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)
from cryptography.hazmat.primitives.ciphers import algorithms

from .access import MessageCode
from .errors import Reason, Refused

__all__ = ["VERSION", "SIGNATURE_BYTES", "MAC_BYTES", "SignedCommand", "sign_p256", "verify_p256"]

VERSION = 1
SIGNATURE_BYTES = 64
MAC_BYTES = 16
_HEADER = struct.Struct(">BHQQQH")
_COORDINATE_BYTES = 32


def sign_p256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """An ECDSA-SHA256 signature as the fixed 64 bytes r || s."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")


def verify_p256(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    r = int.from_bytes(signature[:_COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[_COORDINATE_BYTES:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def _cmac(key: bytes, data: bytes) -> cmac.CMAC:
    mac = cmac.CMAC(algorithms.AES128(key))
    mac.update(data)
    return mac


@dataclass(frozen=True)
class SignedCommand:
    code: MessageCode
    originator: int
    recipient: int
    counter: int
    payload: bytes
    signature: bytes
    broker_mac: bytes | None = None

    @staticmethod
    def signed_part(code: MessageCode, originator: int, recipient: int, counter: int,
                    payload: bytes) -> bytes:
        if len(payload) > 0xFFFF:
            raise ValueError(f"a payload is at most 65535 bytes, not {len(payload)}")
        return _HEADER.pack(VERSION, code, originator, recipient, counter, len(payload)) + payload

    @classmethod
    def sign(cls, key: ec.EllipticCurvePrivateKey, *, code: MessageCode, originator: int,
             recipient: int, counter: int, payload: bytes = b"") -> "SignedCommand":
        """A command signed by the originator's signing key."""
        signature = sign_p256(key, cls.signed_part(code, originator, recipient, counter, payload))
        return cls(code, originator, recipient, counter, payload, signature)

    @property
    def body(self) -> bytes:
        """What the signature covers."""
        return self.signed_part(self.code, self.originator, self.recipient, self.counter,
                                self.payload)

    def with_broker_mac(self, key: bytes) -> "SignedCommand":
        """The command with the broker's MAC (the broker adds it after checking the
        command is one it allows)."""
        return replace(self, broker_mac=_cmac(key, self.body + self.signature).finalize())

    def verify_signature(self, key: ec.EllipticCurvePublicKey) -> bool:
        return verify_p256(key, self.signature, self.body)

    def verify_broker_mac(self, key: bytes) -> bool:
        if self.broker_mac is None:
            return False
        try:
            _cmac(key, self.body + self.signature).verify(self.broker_mac)   # constant time
            return True
        except InvalidSignature:
            return False

    def to_bytes(self) -> bytes:
        return self.body + self.signature + (self.broker_mac or b"")

    @classmethod
    def parse(cls, data: bytes) -> "SignedCommand":
        """The command in ``data``; anything else raises :class:`Refused`
        (:attr:`Reason.MALFORMED`) saying what is wrong."""
        if len(data) < _HEADER.size:
            raise Refused(Reason.MALFORMED, f"{len(data)} bytes is shorter than a command header "
                                            f"({_HEADER.size})")
        version, code, originator, recipient, counter, length = _HEADER.unpack_from(data)
        if version != VERSION:
            raise Refused(Reason.MALFORMED, f"command format version {version}, not {VERSION}")
        try:
            message = MessageCode(code)
        except ValueError:
            raise Refused(Reason.MALFORMED, f"unknown message code {code:#06x}") from None
        signed = _HEADER.size + length
        trailer = len(data) - signed
        if trailer not in (SIGNATURE_BYTES, SIGNATURE_BYTES + MAC_BYTES):
            raise Refused(Reason.MALFORMED, f"{len(data)} bytes for a {length}-byte payload: "
                                            f"expected {signed + SIGNATURE_BYTES} (signature) or "
                                            f"{signed + SIGNATURE_BYTES + MAC_BYTES} (and broker MAC)")
        signature = bytes(data[signed:signed + SIGNATURE_BYTES])
        mac = bytes(data[signed + SIGNATURE_BYTES:]) or None
        return cls(message, originator, recipient, counter, bytes(data[_HEADER.size:signed]),
                   signature, mac)
