"""Authentication of what the supplier sends: an injected verifier, and two real ones.

Tariff and calorific-value updates and top-up codes are accepted only through a
:class:`Verifier`, a small protocol, so that the meter's signed-command path (its PKI)
can supply one without this package knowing how keys are managed. The two here are
what the tests and scripts use: ECDSA P-256 signatures (:class:`EcdsaP256Verifier`)
for updates and a truncated HMAC-SHA256 (:class:`HmacSha256Verifier`) for top-up
codes short enough to type.
"""

import hashlib
import hmac
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["AuthenticationError", "Verifier", "EcdsaP256Verifier", "HmacSha256Verifier"]


class AuthenticationError(Exception):
    """A message's signature or code does not verify, or it was already used; nothing
    was changed."""


class Verifier(Protocol):
    """Checks that ``signature`` authenticates ``message``, raising
    :class:`AuthenticationError` if it does not."""

    def verify(self, message: bytes, signature: bytes) -> None: ...


class EcdsaP256Verifier:
    """ECDSA over P-256 with SHA-256; signatures DER-encoded, as ``cryptography`` makes them."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError(f"the update key must be on P-256, not {public_key.curve.name}")
        self._public_key = public_key

    def verify(self, message: bytes, signature: bytes) -> None:
        try:
            self._public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AuthenticationError("the signature does not verify with the update key") from None


class HmacSha256Verifier:
    """HMAC-SHA256 under a shared key, truncated to ``tag_bytes`` (a top-up code's tag
    must be short enough to type; 5 bytes is 2**40 guesses)."""

    def __init__(self, key: bytes, *, tag_bytes: int = 5):
        if len(key) < 16:
            raise ValueError(f"an HMAC key of {len(key)} bytes is too short: at least 16")
        if not 4 <= tag_bytes <= 32:
            raise ValueError(f"tag of {tag_bytes} bytes: 4 to 32")
        self._key = key
        self.tag_bytes = tag_bytes

    def tag(self, message: bytes) -> bytes:
        """The tag of a message (what the supplier's code generator computes)."""
        return hmac.new(self._key, message, hashlib.sha256).digest()[:self.tag_bytes]

    def verify(self, message: bytes, signature: bytes) -> None:
        if not hmac.compare_digest(self.tag(message), signature):
            raise AuthenticationError("the code's check digits are wrong")
