"""Why the control module refuses something: one exception, with a reason a test or
a head-end can act on and a message a person can read."""

import enum

from ..errors import MeterError

__all__ = ["Reason", "Refused"]


class Reason(enum.Enum):
    """What was wrong. Every refusal changes nothing on the meter."""

    MALFORMED = "malformed"                    #: bytes that do not parse
    BAD_PROFILE = "bad profile"                #: a certificate outside the profile: curve, usage, fields
    BAD_SIGNATURE = "bad signature"            #: an ECDSA signature that does not verify
    WRONG_ROLE = "wrong role"                  #: a certificate issued or used for another role
    EXPIRED = "expired"                        #: outside a certificate's validity period
    REVOKED = "revoked"                        #: on its issuer's CRL
    REVOCATION_UNKNOWN = "revocation unknown"  #: no current, correctly signed CRL from an issuer
    UNTRUSTED = "untrusted"                    #: a chain that does not reach the trust anchor
    UNKNOWN_ORIGINATOR = "unknown originator"  #: no signing anchor holds the originator's id
    WRONG_RECIPIENT = "wrong recipient"        #: addressed to another meter
    REPLAYED = "replayed"                      #: a counter not above the originator's last
    NOT_PERMITTED = "not permitted"            #: the role has no such right on the data object
    BROKER_MAC_MISSING = "broker MAC missing"  #: a critical command without the broker's MAC
    BAD_BROKER_MAC = "bad broker MAC"          #: a broker MAC that does not verify
    UNSUPPORTED = "unsupported"                #: a message this meter has no handler for
    BAD_DIGEST = "bad digest"                  #: a firmware image whose hash is not the signed one
    ROLLBACK = "rollback"                      #: a firmware version not above the running one


class Refused(MeterError):
    """The control module refused a certificate, command or image: ``reason`` says why."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
