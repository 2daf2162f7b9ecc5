"""Certificates in a GB-SMKI-like profile: issued here, and checked against the
profile wherever one is read.

The profile (docs/pki.md):

* X.509 v3, an ECDSA P-256 key, signed with ECDSA-SHA256;
* the role in the subject's organisational unit (:class:`~.roles.Role`);
* key usage marked critical: a CA exactly keyCertSign and cRLSign (and basic
  constraints CA, critical), an end entity exactly one of digitalSignature or
  keyAgreement;
* subject and authority key identifiers of 8 bytes: the leftmost 64 bits of the
  SHA-256 of the public key's point (RFC 7093 method 1, truncated as GB-SMKI's are);
* an end entity's 8-byte identity (a meter's EUI-64, a party's entity id) in
  subjectAltName otherName hardwareModuleName (RFC 4108) as hwSerialNum.
"""

import contextlib
import datetime
import functools
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from .errors import Reason, Refused
from .roles import CA_ROLES, Role, Usage

__all__ = ["HARDWARE_MODULE_NAME", "REFMETER_HARDWARE_TYPE", "KEY_ID_BYTES", "CertificateInfo",
           "strict_parsing", "key_identifier", "hardware_module_name", "parse_hardware_module_name", "inspect",
           "load_certificate", "issue"]

#: id-on-hardwareModuleName (RFC 4108).
HARDWARE_MODULE_NAME = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.4")
#: hwType of refmeter parties: an OID under the UUID arc 2.25 (ITU-T X.667), which
#: needs no registration.
REFMETER_HARDWARE_TYPE = x509.ObjectIdentifier("2.25.55677076348915099104903070642662200724")
KEY_ID_BYTES = 8
IDENTITY_BYTES = 8

_USAGE_BITS = ("digital_signature", "content_commitment", "key_encipherment",
               "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
_USAGES = {Usage.SIGNING: {"digital_signature"}, Usage.KEY_AGREEMENT: {"key_agreement"},
           Usage.CERTIFICATION: {"key_cert_sign", "crl_sign"}}


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate that meets the profile, with what the profile says it holds."""

    certificate: x509.Certificate
    role: Role
    usage: Usage
    identity: int | None        #: an end entity's 8-byte id; None for a CA
    key_id: bytes               #: subject key identifier
    issuer_key_id: bytes | None  #: authority key identifier (None on the root)

    @functools.cached_property   # loading a key checks its point: once per certificate
    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = self.certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # inspect() checked it
        return key

    @property
    def is_ca(self) -> bool:
        return self.usage is Usage.CERTIFICATION

    def describe(self) -> str:
        """One line a person reads: who, what for, and the key id."""
        who = f"{self.role.value} CA" if self.is_ca else \
            f"{self.role.value} {format_identity(self.identity)}, {self.usage.value}"
        return f"{who} (key id {self.key_id.hex()})"


def format_identity(identity: int | None) -> str:
    return "-".join(f"{byte:02x}" for byte in (identity or 0).to_bytes(IDENTITY_BYTES, "big"))


def key_identifier(key: ec.EllipticCurvePublicKey) -> bytes:
    point = key.public_bytes(serialization.Encoding.X962,
                             serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()[:KEY_ID_BYTES]


# The few DER bytes of HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER,
# hwSerialNum OCTET STRING }: cryptography carries an otherName's value as DER it
# does not interpret, and the structure is fixed, so it is written and read here.
def _tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 128   # short-form lengths only: everything here is small
    return bytes([tag, len(content)]) + content


def _oid_der(oid: x509.ObjectIdentifier) -> bytes:
    arcs = [int(arc) for arc in oid.dotted_string.split(".")]
    encoded = bytearray()
    for value in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [value & 0x7F]
        while value := value >> 7:
            chunk.append(0x80 | value & 0x7F)
        encoded += bytes(reversed(chunk))
    return _tlv(0x06, bytes(encoded))


def hardware_module_name(identity: int) -> bytes:
    """The DER of a HardwareModuleName holding ``identity`` (8 bytes) as hwSerialNum."""
    return _tlv(0x30, _oid_der(REFMETER_HARDWARE_TYPE)
                + _tlv(0x04, identity.to_bytes(IDENTITY_BYTES, "big")))


def parse_hardware_module_name(der: bytes) -> int:
    """The identity in a HardwareModuleName of refmeter's hwType; anything else is
    refused (:attr:`Reason.BAD_PROFILE`)."""
    expected_type = _oid_der(REFMETER_HARDWARE_TYPE)
    prefix = bytes([0x30, len(expected_type) + 2 + IDENTITY_BYTES]) + expected_type \
        + bytes([0x04, IDENTITY_BYTES])
    if len(der) != len(prefix) + IDENTITY_BYTES or not der.startswith(prefix):
        raise Refused(Reason.BAD_PROFILE, "hardwareModuleName is not refmeter's hwType with an "
                                          f"{IDENTITY_BYTES}-byte hwSerialNum")
    return int.from_bytes(der[len(prefix):], "big")


@contextlib.contextmanager
def strict_parsing(what: str) -> Iterator[None]:
    """Turn whatever cryptography raises or warns about damaged DER (it parses some
    fields lazily, and loads but deprecates others that break RFC 5280) into
    :attr:`Reason.MALFORMED`, naming ``what``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
            x509.DuplicateExtension, x509.UnsupportedGeneralNameType, Warning) as error:
        raise Refused(Reason.MALFORMED, f"{what}: {error}") from None


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes (not yet checked against the profile)."""
    with strict_parsing("not an X.509 certificate"):
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)


def inspect(certificate: x509.Certificate) -> CertificateInfo:
    """Check ``certificate`` against the profile and say what it holds; raise
    :class:`Refused` (:attr:`Reason.BAD_PROFILE`, or :attr:`Reason.MALFORMED` for
    parts that do not parse) naming the first rule it breaks."""
    with strict_parsing("a certificate with an unreadable subject"):
        name = certificate.subject.rfc4514_string()

    def refuse(rule: str) -> Refused:
        return Refused(Reason.BAD_PROFILE, f"{name}: {rule}")

    with strict_parsing(name):
        return _inspect(certificate, refuse)


def _inspect(certificate: x509.Certificate, refuse) -> CertificateInfo:
    # Parse now every field that later checks read, so that damage is MALFORMED here.
    certificate.issuer, certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if certificate.version is not x509.Version.v3:
        raise refuse("not an X.509 v3 certificate")
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        curve = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise refuse(f"the key is {curve}, not an ECDSA P-256 (secp256r1) key")
    if certificate.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise refuse("not signed with ECDSA-SHA256")
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    roles = {role.value: role for role in Role}
    if len(units) != 1 or units[0].value not in roles:
        raise refuse(f"the organisational unit must be one role of {', '.join(roles)}")
    role = roles[units[0].value]
    extensions = certificate.extensions
    usage_extension = extensions.get_extension_for_class(x509.KeyUsage) \
        if _has(extensions, x509.KeyUsage) else None
    if usage_extension is None or not usage_extension.critical:
        raise refuse("key usage must be present and critical")
    key_usage = usage_extension.value
    granted = {bit for bit in _USAGE_BITS if getattr(key_usage, bit)}
    if key_usage.key_agreement and (key_usage.encipher_only or key_usage.decipher_only):
        granted.add("encipher/decipher only")
    usage = next((usage for usage, bits in _USAGES.items() if granted == bits), None)
    if usage is None:
        raise refuse(f"key usage {', '.join(sorted(granted)) or 'empty'} is not exactly one of "
                     f"digitalSignature or keyAgreement (or keyCertSign with cRLSign on a CA)")
    constraints = extensions.get_extension_for_class(x509.BasicConstraints) \
        if _has(extensions, x509.BasicConstraints) else None
    is_ca = constraints is not None and constraints.value.ca
    if (usage is Usage.CERTIFICATION) != is_ca or (is_ca and not constraints.critical):
        raise refuse("a CA must have critical basic constraints and certificate-signing key "
                     "usage, an end entity neither")
    if (is_ca and role not in CA_ROLES) or (not is_ca and role is Role.ROOT):
        raise refuse(f"a {role.value} certificate cannot be a "
                     f"{'CA' if is_ca else 'end entity'}")
    if not _has(extensions, x509.SubjectKeyIdentifier):
        raise refuse("no subject key identifier")
    key_id = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    if key_id != key_identifier(key):
        raise refuse(f"the subject key identifier is not the {KEY_ID_BYTES}-byte SHA-256 "
                     f"identifier of its key")
    issuer_key_id = None
    if _has(extensions, x509.AuthorityKeyIdentifier):
        issuer_key_id = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier) \
            .value.key_identifier
    if role is not Role.ROOT and (issuer_key_id is None or len(issuer_key_id) != KEY_ID_BYTES):
        raise refuse(f"no {KEY_ID_BYTES}-byte authority key identifier")
    identity = None if is_ca else _identity(extensions, refuse)
    return CertificateInfo(certificate, role, usage, identity, key_id, issuer_key_id)


def _has(extensions: x509.Extensions, kind: type) -> bool:
    try:
        extensions.get_extension_for_class(kind)
        return True
    except x509.ExtensionNotFound:
        return False


def _identity(extensions: x509.Extensions, refuse) -> int:
    if not _has(extensions, x509.SubjectAlternativeName):
        raise refuse("an end entity needs its identity in subjectAltName")
    names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    modules = [name.value for name in names.get_values_for_type(x509.OtherName)
               if name.type_id == HARDWARE_MODULE_NAME]
    if len(names) != 1 or len(modules) != 1:
        raise refuse("subjectAltName must hold exactly one otherName hardwareModuleName")
    return parse_hardware_module_name(modules[0])


def issue(*, subject_key: ec.EllipticCurvePublicKey, role: Role, usage: Usage, common_name: str,
          issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          not_before: datetime.datetime, not_after: datetime.datetime,
          identity: int | None = None) -> x509.Certificate:
    """A certificate in the profile, signed by ``issuer_key`` (the CA of ``issuer``;
    ``issuer`` None makes a self-signed root)."""
    if (usage is Usage.CERTIFICATION) != (identity is None):
        raise ValueError("an end entity needs an identity and a CA has none")
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refmeter demonstration PKI"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    bits = dict.fromkeys(_USAGE_BITS, False) | dict.fromkeys(_USAGES[usage], True)
    issuer_public = issuer_key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(subject if issuer is None else issuer.subject)
               .public_key(subject_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.KeyUsage(**bits, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier(key_identifier(subject_key)),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(key_identifier(issuer_public),
                                                          None, None), critical=False))
    if usage is Usage.CERTIFICATION:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.OtherName(HARDWARE_MODULE_NAME, hardware_module_name(identity))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())
