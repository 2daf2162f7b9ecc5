"""Certificate path validation: from an end entity through its role's CA to the
root trust anchor, with validity periods, roles and CRLs checked at every step.

It is done here rather than with ``cryptography.x509.verification``, whose
verifiers apply the Web PKI's server and client profiles (DNS names, extended key
usage), not this one.
"""

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from .certificates import CertificateInfo, inspect
from .errors import Reason, Refused
from .roles import ISSUER, Role

__all__ = ["validate_path", "check_validity"]

#: End entity, role CA, root: no path in this PKI is longer.
_MAX_PATH = 3


def check_validity(info: CertificateInfo, at: datetime.datetime) -> None:
    certificate = info.certificate
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise Refused(Reason.EXPIRED,
                      f"{info.describe()} is valid from {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} "
                      f"to {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not at "
                      f"{at:%Y-%m-%d %H:%M} UTC")


def _check_signature(subject: x509.Certificate | x509.CertificateRevocationList,
                     issuer: CertificateInfo, what: str) -> None:
    try:
        if isinstance(subject, x509.Certificate):
            subject.verify_directly_issued_by(issuer.certificate)
        elif not subject.is_signature_valid(issuer.public_key):
            raise InvalidSignature
    except (InvalidSignature, ValueError, TypeError):
        raise Refused(Reason.BAD_SIGNATURE,
                      f"{what} is not signed by {issuer.describe()}") from None


def _check_revocation(info: CertificateInfo, issuer: CertificateInfo,
                      crls: Sequence[x509.CertificateRevocationList], at: datetime.datetime) -> None:
    current = [crl for crl in crls if crl.issuer == issuer.certificate.subject
               and crl.last_update_utc <= at and (crl.next_update_utc or at) >= at]
    if not current:
        raise Refused(Reason.REVOCATION_UNKNOWN,
                      f"no CRL from {issuer.describe()} current at {at:%Y-%m-%d %H:%M} UTC, "
                      f"so {info.describe()} may be revoked")
    for crl in current:
        _check_signature(crl, issuer, "the CRL naming it as issuer")
        if crl.get_revoked_certificate_by_serial_number(info.certificate.serial_number) is not None:
            raise Refused(Reason.REVOKED, f"{info.describe()} is on the CRL of {issuer.describe()}")


def validate_path(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                  root: x509.Certificate, crls: Sequence[x509.CertificateRevocationList], *,
                  at: datetime.datetime) -> CertificateInfo:
    """Check that ``leaf`` chains through ``intermediates`` to the trust anchor
    ``root`` and is good at time ``at``; return what ``leaf`` holds.

    Every certificate must meet the profile, be within its validity period, be
    signed by the next (found by name and key identifier); an end entity must come
    from its role's CA (:data:`~.roles.ISSUER`) and a CA from the root; every
    certificate below the root must be absent from a current CRL, correctly
    signed, of its issuer. Raises :class:`Refused` with the first failure.
    """
    anchor = inspect(root)
    if anchor.role is not Role.ROOT:
        raise Refused(Reason.WRONG_ROLE, f"the trust anchor {anchor.describe()} is not a root")
    _check_signature(root, anchor, f"the root {anchor.describe()}")
    leaf_info = inspect(leaf)
    candidates = [anchor, *(inspect(certificate) for certificate in intermediates)]
    path = [leaf_info]
    while path[-1].certificate != root:
        current = path[-1]
        issuer = next((candidate for candidate in candidates
                       if candidate.is_ca and candidate.key_id == current.issuer_key_id
                       and candidate.certificate.subject == current.certificate.issuer), None)
        # A self-signed certificate other than the anchor ends a chain that misses it.
        if issuer is None or issuer in path or len(path) == _MAX_PATH or \
                (issuer is not anchor and issuer.issuer_key_id == issuer.key_id):
            raise Refused(Reason.UNTRUSTED, f"the chain of {leaf_info.describe()} does not reach "
                                            f"the root {anchor.describe()}: nothing given issued "
                                            f"{current.describe()}")
        path.append(issuer)
    for current, issuer in zip(path, path[1:]):
        check_validity(current, at)
        expected = Role.ROOT if current.is_ca else ISSUER[current.role]
        if issuer.role is not expected:
            raise Refused(Reason.WRONG_ROLE, f"{current.describe()} is issued by "
                                             f"{issuer.describe()}, not by a {expected.value} CA")
        _check_signature(current.certificate, issuer, current.describe())
        _check_revocation(current, issuer, crls, at)
    check_validity(anchor, at)
    return leaf_info
