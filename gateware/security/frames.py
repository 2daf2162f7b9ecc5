"""What the security unit authenticates, byte for byte: the one definition the
gateware builds its AES-GCM inputs from and the host (``refmeter.soft.security``)
builds and checks frames with.

A command (an authenticated register write)
-------------------------------------------
AES-GCM-128 under the key of ``authority``'s slot, as DLMS/COSEM security suite 0
with security control 0x30 (authenticated and encrypted):

* nonce: the sender's system title (8 bytes) || its invocation counter (4 bytes,
  big-endian), strictly increasing per slot;
* AAD (13 bytes): 0x30 || the meter's system title || authority || register
  address (2) || value length (1), so a command cannot be moved to another meter,
  slot or register;
* plaintext: the register's value, big-endian, right-aligned in 16 bytes;
* tag: the first :data:`TAG_BYTES` bytes of the GCM tag.

A sealed reading
----------------
A GMAC (security control 0x10, authentication only) under the meter's reading key:

* nonce: the meter's system title || the seal counter (4 bytes), which the meter
  increments for every seal and never reuses;
* AAD (14 bytes): 0x10 || the kind (:class:`SealKind`) || the 12 bytes sealed.
"""

import enum

__all__ = ["TAG_BYTES", "COMMAND_CONTROL", "SEAL_CONTROL", "VALUE_BYTES", "SEALED_BYTES",
           "COMMAND_AAD_BYTES", "SEAL_AAD_BYTES", "SealKind", "system_title", "command_aad",
           "command_plaintext", "seal_aad"]

#: Tag length, as DLMS suite 0 uses.
TAG_BYTES = 12
#: DLMS security control bytes: authenticated and encrypted; authenticated only.
COMMAND_CONTROL = 0x30
SEAL_CONTROL = 0x10
#: Bytes of a command's plaintext (every register value fits in it, right-aligned).
VALUE_BYTES = 16
#: Bytes a seal covers.
SEALED_BYTES = 12
#: AAD lengths: control, meter title, authority, address, length; control, kind, data.
COMMAND_AAD_BYTES = 1 + 8 + 1 + 2 + 1
SEAL_AAD_BYTES = 1 + 1 + SEALED_BYTES
#: DLMS system titles start with a three-letter manufacturer id. refmeter has no
#: FLAG-registered id, so it uses these letters; a deployment sets its own.
MANUFACTURER_ID = b"RFM"


class SealKind(enum.IntEnum):
    """What a sealed reading holds."""

    PROFILE_RECORD = 1  #: the load-profile record in the slot of ``profile_select``
    #: UTC seconds, total +A Wh and total -A Wh (4 bytes each), when sealed
    SNAPSHOT = 2


def system_title(meter_id: int) -> bytes:
    """The meter's DLMS system title: the manufacturer id and the last five bytes of
    its EUI-64."""
    return MANUFACTURER_ID + meter_id.to_bytes(8, "big")[3:]


def command_aad(meter_title: bytes, authority: int, address: int, length: int) -> bytes:
    return (bytes([COMMAND_CONTROL]) + meter_title + bytes([authority])
            + address.to_bytes(2, "big") + bytes([length]))


def command_plaintext(value: bytes) -> bytes:
    if len(value) > VALUE_BYTES:
        raise ValueError(f"A command carries at most {VALUE_BYTES} bytes, not {len(value)}")
    return value.rjust(VALUE_BYTES, b"\0")


def seal_aad(kind: SealKind, sealed: bytes) -> bytes:
    if len(sealed) != SEALED_BYTES:
        raise ValueError(f"A seal covers {SEALED_BYTES} bytes, not {len(sealed)}")
    return bytes([SEAL_CONTROL, kind]) + sealed
