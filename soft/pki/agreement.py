"""Static-static ECDH between a remote party's key-agreement key and the meter's,
and the NIST SP 800-56A concatenation KDF that turns the shared secret into the
AES-128 keys the gateware's key slots hold.

OtherInfo follows the GB layout (GBCS, after the DLMS Green Book's key agreement),
fixed-length fields concatenated:

==============  =======  ==================================================
AlgorithmID     7 bytes  ``60 85 74 05 08 03 00``: the DER body of the DLMS
                         OID 2.16.756.5.8.3.0, aes-gcm-128, the algorithm
                         the gateware slots use (DLMS and GBCS use this id)
PartyUInfo      8 bytes  the remote party's identity (its certificate's)
PartyVInfo      8 bytes  the meter's identity (its EUI-64)
SuppPubInfo     1 byte   the key's purpose: the gateware slot (0-4), or
                         :data:`BROKER_MAC_PURPOSE`
==============  =======  ==================================================

The identities make each pair's keys its own (no fleet-wide secret), and the
purpose byte makes every key independent of the others one pair derives: a slot
key and the broker's command-MAC key never coincide, although both come from the
same shared secret.
"""

from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from refmeter.gateware.security.authority import Authority

from ..security import KEY_BYTES, KeySet
from .certificates import CertificateInfo
from .errors import Reason, Refused
from .roles import GATEWARE_SLOT, Role, Usage

__all__ = ["ALGORITHM_ID", "BROKER_MAC_PURPOSE", "other_info", "agree", "derive_key", "derive_keyset",
           "party_keys", "broker_mac_key"]

ALGORITHM_ID = bytes.fromhex("60857405080300")
#: The purpose byte of the key the broker MACs critical commands with (AES-CMAC).
BROKER_MAC_PURPOSE = 0x80


def other_info(purpose: int, remote_identity: int, meter_identity: int) -> bytes:
    return (ALGORITHM_ID + remote_identity.to_bytes(8, "big") + meter_identity.to_bytes(8, "big")
            + bytes([purpose]))


def agree(own_key: ec.EllipticCurvePrivateKey, peer_key: ec.EllipticCurvePublicKey,
          info: bytes) -> bytes:
    """ECDH on P-256, then the SP 800-56A concatenation KDF (SHA-256) with OtherInfo
    ``info``: one AES-128 key."""
    if not isinstance(own_key.curve, ec.SECP256R1) or not isinstance(peer_key.curve, ec.SECP256R1):
        raise Refused(Reason.BAD_PROFILE, "key agreement is on P-256 only")
    shared = own_key.exchange(ec.ECDH(), peer_key)
    return ConcatKDFHash(hashes.SHA256(), KEY_BYTES, info).derive(shared)


def derive_key(own_key: ec.EllipticCurvePrivateKey, peer_key: ec.EllipticCurvePublicKey, *,
               purpose: int, remote_identity: int, meter_identity: int) -> bytes:
    """One key of a remote party and a meter; both ends compute the same from their
    own private key and the other's public key."""
    return agree(own_key, peer_key, other_info(purpose, remote_identity, meter_identity))


def _key_agreement(info: CertificateInfo, role: Role) -> CertificateInfo:
    if info.role is not role or info.usage is not Usage.KEY_AGREEMENT:
        raise Refused(Reason.WRONG_ROLE, f"{info.describe()} is not a {role.value} "
                                         f"key-agreement certificate")
    return info


def derive_keyset(meter_key: ec.EllipticCurvePrivateKey, meter_identity: int,
                  parties: Mapping[Role, CertificateInfo]) -> KeySet:
    """The meter's side: every gateware slot's key, from the key-agreement
    certificates of the parties :data:`~.roles.GATEWARE_SLOT` names. Commissioning
    is ``provision(meter, derive_keyset(...))``."""
    keys = {}
    for authority, role in GATEWARE_SLOT.items():
        try:
            party = _key_agreement(parties[role], role)
        except KeyError:
            raise Refused(Reason.UNTRUSTED, f"no {role.value} key-agreement certificate for "
                                            f"the {authority.slot_name} slot") from None
        keys[authority] = derive_key(meter_key, party.public_key, purpose=authority,
                                     remote_identity=party.identity, meter_identity=meter_identity)
    return KeySet(meter_identity, keys)


def party_keys(role: Role, party_key: ec.EllipticCurvePrivateKey, party_identity: int,
               meter: CertificateInfo) -> dict[Authority, bytes]:
    """The remote party's side: the keys of the slots its role holds in ``meter``."""
    _key_agreement(meter, Role.METER)
    return {authority: derive_key(party_key, meter.public_key, purpose=authority,
                                  remote_identity=party_identity, meter_identity=meter.identity)
            for authority, slot_role in GATEWARE_SLOT.items() if slot_role is role}


def broker_mac_key(meter_key: ec.EllipticCurvePrivateKey, broker: CertificateInfo,
                   meter_identity: int) -> bytes:
    """The meter's copy of the key the broker MACs critical commands with: from the
    broker's key-agreement certificate, purpose :data:`BROKER_MAC_PURPOSE` (the
    broker computes it with :func:`derive_key` from the meter's certificate)."""
    _key_agreement(broker, Role.BROKER)
    return derive_key(meter_key, broker.public_key, purpose=BROKER_MAC_PURPOSE,
                      remote_identity=broker.identity, meter_identity=meter_identity)
