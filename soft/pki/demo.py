"""A complete demonstration PKI: the root, the role CAs with their CRLs, every
remote party's two certificates and a meter's, as ``refmeter pki init`` writes it.

Layout of the directory (private keys PEM, unencrypted, mode 0600: a
demonstration, not an HSM)::

    root/            certificate.pem  private-key.pem  crl.pem
    ca-<role>/       the same, for broker, supplier, network, manufacturer
    <role>/          signing.pem  signing.key.pem  key-agreement.pem  key-agreement.key.pem
                     for broker, supplier, network, manufacturer and meter;
                     recovery/ holds a signing pair only
"""

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .anchors import SLOTS, Credentials, Slot
from .certificates import CertificateInfo, inspect, issue, load_certificate
from .roles import CA_ROLES, ISSUER, Role, Usage

__all__ = ["PARTY_IDENTITIES", "KeyPair", "DemoPki", "issue_crl"]

#: The remote parties' 8-byte identities in the demonstration.
PARTY_IDENTITIES = {Role.RECOVERY: 0x02_52_45_46_FF_00_00_01, Role.BROKER: 0x02_52_45_46_FF_00_00_02,
                    Role.SUPPLIER: 0x02_52_45_46_FF_00_00_03, Role.NETWORK: 0x02_52_45_46_FF_00_00_04,
                    Role.MANUFACTURER: 0x02_52_45_46_FF_00_00_05}
_CA_YEARS, _END_ENTITY_YEARS, _CRL_DAYS = 25, 10, 365


@dataclass(frozen=True)
class KeyPair:
    """A private key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def info(self) -> CertificateInfo:
        return inspect(self.certificate)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _years(start: datetime.datetime, years: int) -> datetime.datetime:
    return start + datetime.timedelta(days=365 * years)


def issue_crl(ca: KeyPair, at: datetime.datetime, revoked: tuple[x509.Certificate, ...] = ()) \
        -> x509.CertificateRevocationList:
    """``ca``'s CRL issued at ``at``, listing ``revoked``."""
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject)
               .last_update(at).next_update(at + datetime.timedelta(days=_CRL_DAYS)))
    for certificate in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(certificate.serial_number)
            .revocation_date(at).build())
    return builder.sign(ca.key, hashes.SHA256())


@dataclass
class DemoPki:
    root: KeyPair
    cas: dict[Role, KeyPair]                           #: role CAs, by role
    parties: dict[tuple[Role, Usage], KeyPair]         #: end entities, meter included
    crls: dict[Role, x509.CertificateRevocationList] = field(default_factory=dict)  #: by CA role

    @classmethod
    def generate(cls, meter_identity: int, *, at: datetime.datetime) -> "DemoPki":
        root_key = _new_key()
        root = KeyPair(root_key, issue(subject_key=root_key.public_key(), role=Role.ROOT,
                                       usage=Usage.CERTIFICATION, common_name="refmeter demo root",
                                       issuer_key=root_key, issuer=None, not_before=at,
                                       not_after=_years(at, _CA_YEARS)))
        pki = cls(root, {}, {})
        for role in sorted(CA_ROLES - {Role.ROOT}, key=lambda role: role.value):
            pki.cas[role] = pki.certify(_new_key(), role, Usage.CERTIFICATION, at=at,
                                        until=_years(at, _CA_YEARS))
        identities = PARTY_IDENTITIES | {Role.METER: meter_identity}
        for role, identity in identities.items():
            usages = (Usage.SIGNING,) if role is Role.RECOVERY else \
                (Usage.SIGNING, Usage.KEY_AGREEMENT)
            for usage in usages:
                pki.parties[role, usage] = pki.certify(_new_key(), role, usage, at=at,
                                                       until=_years(at, _END_ENTITY_YEARS),
                                                       identity=identity)
        pki.crls = {role: issue_crl(ca, at) for role, ca in [(Role.ROOT, root), *pki.cas.items()]}
        return pki

    def issuer_of(self, role: Role, usage: Usage) -> KeyPair:
        """The CA that certifies ``role``'s certificates of ``usage``."""
        if usage is Usage.CERTIFICATION or ISSUER[role] is Role.ROOT:
            return self.root
        return self.cas[ISSUER[role]]

    def certify(self, key: ec.EllipticCurvePrivateKey, role: Role, usage: Usage, *,
                at: datetime.datetime, until: datetime.datetime,
                identity: int | None = None) -> KeyPair:
        """A new certificate for ``key`` from the CA that certifies ``role``."""
        issuer = self.issuer_of(role, usage)
        name = f"refmeter demo {role.value} " + ("CA" if identity is None else usage.value)
        return KeyPair(key, issue(subject_key=key.public_key(), role=role, usage=usage,
                                  common_name=name, issuer_key=issuer.key,
                                  issuer=issuer.certificate, not_before=at, not_after=until,
                                  identity=identity))

    def credentials(self, certificate: x509.Certificate) -> Credentials:
        """``certificate`` with its CA's certificate and every current CRL."""
        intermediates = tuple(ca.certificate for ca in self.cas.values()
                              if ca.certificate.subject == certificate.issuer)
        return Credentials(certificate, intermediates, tuple(self.crls.values()))

    def anchors(self) -> dict[Slot, Credentials]:
        """What a meter is commissioned with: a certificate for every anchor slot."""
        return {slot: self.credentials(self.root.certificate if slot[0] is Role.ROOT
                                       else self.parties[slot].certificate) for slot in SLOTS}

    # -- files ------------------------------------------------------------------------

    @staticmethod
    def _ca_folder(role: Role) -> str:
        return role.value if role is Role.ROOT else f"ca-{role.value}"

    def save(self, directory: Path) -> None:
        """Write the PKI into ``directory``, which must not exist or be empty."""
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()):
            raise ValueError(f"{directory} is not empty: a PKI is never written over another")
        for role, ca in [(Role.ROOT, self.root), *self.cas.items()]:
            folder = directory / self._ca_folder(role)
            _write_pair(folder, "certificate", "private-key", ca)
            (folder / "crl.pem").write_bytes(self.crls[role].public_bytes(serialization.Encoding.PEM))
        for (role, usage), pair in self.parties.items():
            _write_pair(directory / role.value, usage.value, f"{usage.value}.key", pair)

    @classmethod
    def load(cls, directory: Path) -> "DemoPki":
        directory = Path(directory)
        try:
            root = _read_pair(directory / "root", "certificate", "private-key")
            cas = {role: _read_pair(directory / cls._ca_folder(role), "certificate",
                                    "private-key") for role in CA_ROLES - {Role.ROOT}}
            parties = {}
            for role in PARTY_IDENTITIES.keys() | {Role.METER}:
                for usage in (Usage.SIGNING, Usage.KEY_AGREEMENT):
                    if (directory / role.value / f"{usage.value}.pem").exists():
                        parties[role, usage] = _read_pair(directory / role.value, usage.value,
                                                          f"{usage.value}.key")
            crls = {role: x509.load_pem_x509_crl(
                (directory / cls._ca_folder(role) / "crl.pem").read_bytes())
                for role in CA_ROLES}
        except OSError as error:
            raise ValueError(f"{directory} is not a complete refmeter PKI: {error}") from None
        return cls(root, cas, parties, crls)


def _write_pair(folder: Path, certificate_name: str, key_name: str, pair: KeyPair) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{certificate_name}.pem").write_bytes(
        pair.certificate.public_bytes(serialization.Encoding.PEM))
    key = pair.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    # Created 0600, never widened by a umask or seen with wider rights for an instant.
    descriptor = os.open(folder / f"{key_name}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)


def _read_pair(folder: Path, certificate_name: str, key_name: str) -> KeyPair:
    certificate = load_certificate((folder / f"{certificate_name}.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / f"{key_name}.pem").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{folder / key_name}.pem is not an EC private key")
    return KeyPair(key, certificate)
