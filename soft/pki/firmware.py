"""Signed firmware images: bitstreams and host software bundles, signed with the
manufacturer's signing key and checked by the meter before anything runs them.

An image is a header, its signature and the body:

==============  ========  ==============================================
magic           4 bytes   ``RFMI``
format          1 byte    :data:`FORMAT`
kind            1 byte    :class:`ImageKind`
version         4 bytes   strictly increasing per kind: no rollback
length          4 bytes   of the body
digest          32 bytes  SHA-256 of the body
signer key id   8 bytes   the manufacturer signing certificate's key id
signature       64 bytes  ECDSA P-256 / SHA-256 over the header, r || s
body            length bytes
==============  ========  ==============================================

The signature covers the header, and the header the body's digest, so a change
anywhere (one bit) is refused: :attr:`Reason.BAD_SIGNATURE` in the header or
signature, :attr:`Reason.BAD_DIGEST` in the body, :attr:`Reason.MALFORMED` where
it no longer parses.
"""

import enum
import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from .certificates import CertificateInfo
from .errors import Reason, Refused
from .message import SIGNATURE_BYTES, sign_p256, verify_p256
from .roles import Role, Usage

__all__ = ["MAGIC", "FORMAT", "ImageKind", "FirmwareImage", "sign_image", "verify_image"]

MAGIC = b"RFMI"
FORMAT = 1
_HEADER = struct.Struct(">4sBBII32s8s")


class ImageKind(enum.IntEnum):
    BITSTREAM = 1    #: an FPGA configuration (the sealed metrology module)
    HOST_BUNDLE = 2  #: the control module's software


@dataclass(frozen=True)
class FirmwareImage:
    """A verified image."""

    kind: ImageKind
    version: int
    body: bytes

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.body).digest()


def _manufacturer(signer: CertificateInfo) -> CertificateInfo:
    if (signer.role, signer.usage) != (Role.MANUFACTURER, Usage.SIGNING):
        raise Refused(Reason.WRONG_ROLE, f"{signer.describe()} is not a manufacturer's signing "
                                         f"certificate: only those sign firmware")
    return signer


def sign_image(body: bytes, *, kind: ImageKind, version: int, key: ec.EllipticCurvePrivateKey,
               signer: CertificateInfo) -> bytes:
    """The signed image of ``body``; ``signer`` is the certificate of ``key``."""
    _manufacturer(signer)
    if signer.public_key.public_numbers() != key.public_key().public_numbers():
        raise ValueError(f"the key is not the one {signer.describe()} certifies")
    if not 0 <= version < 1 << 32:
        raise ValueError(f"an image version is 0..2^32-1, not {version}")
    header = _HEADER.pack(MAGIC, FORMAT, kind, version, len(body), hashlib.sha256(body).digest(),
                          signer.key_id)
    return header + sign_p256(key, header) + body


def verify_image(data: bytes, signer: CertificateInfo) -> FirmwareImage:
    """The image in ``data`` if ``signer`` (the meter's manufacturer signing anchor)
    signed it and its body is the one signed; else :class:`Refused`."""
    _manufacturer(signer)
    if len(data) < _HEADER.size + SIGNATURE_BYTES:
        raise Refused(Reason.MALFORMED, f"{len(data)} bytes is shorter than an image header")
    magic, version_of_format, kind, version, length, digest, key_id = _HEADER.unpack_from(data)
    if magic != MAGIC or version_of_format != FORMAT:
        raise Refused(Reason.MALFORMED, f"not a refmeter image of format {FORMAT}")
    if key_id != signer.key_id:
        raise Refused(Reason.UNTRUSTED, f"signed by key {key_id.hex()}, not by "
                                        f"{signer.describe()}")
    header, signature = data[:_HEADER.size], data[_HEADER.size:_HEADER.size + SIGNATURE_BYTES]
    if not verify_p256(signer.public_key, signature, header):
        raise Refused(Reason.BAD_SIGNATURE, f"the image header's signature is not by "
                                            f"{signer.describe()}")
    try:
        image_kind = ImageKind(kind)
    except ValueError:
        raise Refused(Reason.MALFORMED, f"unknown image kind {kind}") from None
    body = data[_HEADER.size + SIGNATURE_BYTES:]
    if len(body) != length:
        raise Refused(Reason.MALFORMED, f"the body is {len(body)} bytes, the header says {length}")
    image = FirmwareImage(image_kind, version, bytes(body))
    if image.digest != digest:
        raise Refused(Reason.BAD_DIGEST, "the body's SHA-256 is not the signed one")
    return image
