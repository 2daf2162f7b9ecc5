"""The PKI: certificates in the GB-SMKI-like profile, path validation with expiry,
roles and CRLs, and key agreement into the gateware's slot keys."""

import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings, strategies as st
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.gateware.security.authority import Authority
from refmeter.soft.pki.agreement import (ALGORITHM_ID, agree, derive_keyset, other_info,
                                         party_keys)
from refmeter.soft.pki.certificates import (HARDWARE_MODULE_NAME, REFMETER_HARDWARE_TYPE,
                                            hardware_module_name, inspect, issue, key_identifier,
                                            load_certificate, parse_hardware_module_name)
from refmeter.soft.pki.demo import PARTY_IDENTITIES, DemoPki, issue_crl
from refmeter.soft.pki.errors import Reason, Refused
from refmeter.soft.pki.roles import GATEWARE_SLOT, Role, Usage
from refmeter.soft.pki.validation import validate_path

import cryptography_vectors

from pki_helpers import ISSUED, NOW


@pytest.fixture(scope="module")
def pki() -> DemoPki:
    return DemoPki.generate(DEMO_METER_ID, at=ISSUED)


def _validate(pki: DemoPki, certificate: x509.Certificate, *, at=NOW, crls=None, root=None):
    credentials = pki.credentials(certificate)
    return validate_path(certificate, credentials.intermediates, root or pki.root.certificate,
                         credentials.crls if crls is None else crls, at=at)


# -- the profile ------------------------------------------------------------------------

def test_every_demo_certificate_meets_the_profile(pki):
    """Read with cryptography alone (not our parser): P-256, ECDSA-SHA256, critical key
    usage with exactly one of digitalSignature / keyAgreement on end entities, the role
    in OU, 8-byte key identifiers linking each certificate to its issuer's key."""
    for (role, usage), pair in pki.parties.items():
        certificate = pair.certificate
        assert isinstance(certificate.public_key().curve, ec.SECP256R1)
        assert certificate.signature_hash_algorithm.name == "sha256"
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        assert key_usage.critical
        assert (key_usage.value.digital_signature, key_usage.value.key_agreement) == \
            ((True, False) if usage is Usage.SIGNING else (False, True))
        assert certificate.subject.get_attributes_for_oid(
            NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role.value
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        aki = certificate.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier).value.key_identifier
        point = certificate.public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint)
        issuer = pki.issuer_of(role, usage).certificate
        assert len(ski) == len(aki) == 8 and ski == hashlib.sha256(point).digest()[:8]
        assert aki == issuer.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest
        info = inspect(certificate)
        assert (info.role, info.usage) == (role, usage)
        assert info.identity == (DEMO_METER_ID if role is Role.METER else PARTY_IDENTITIES[role])
    assert {role for role, _ in pki.parties} == set(Role) - {Role.ROOT}
    assert set(pki.cas) == {Role.BROKER, Role.SUPPLIER, Role.NETWORK, Role.MANUFACTURER}


def test_hardware_module_name_is_the_rfc_4108_structure():
    """SEQUENCE { hwType OID, hwSerialNum OCTET STRING (8) }, hand-assembled, with the
    OID's DER taken from a certificate cryptography encoded it in."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    carrier = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(ISSUED).not_valid_after(NOW)
               .add_extension(x509.UnrecognizedExtension(REFMETER_HARDWARE_TYPE, b"\x05\x00"),
                              critical=False).sign(key, hashes.SHA256()))
    der = carrier.public_bytes(serialization.Encoding.DER)
    # The extension is SEQUENCE { 06 n <arcs>, 04 02 05 00 }: the OID's TLV ends where
    # the value's begins.
    end = der.index(b"\x04\x02\x05\x00")
    oid = next(der[end - n - 2:end] for n in range(1, 64)
               if der[end - n - 2] == 0x06 and der[end - n - 1] == n)
    assert hardware_module_name(0x0252454600000001) == bytes([0x30, len(oid) + 10]) + oid + \
        bytes.fromhex("04 08 02 52 45 46 00 00 00 01")
    # The well-known encoding of id-on-hardwareModuleName itself, for the type id:
    assert HARDWARE_MODULE_NAME.dotted_string == "1.3.6.1.5.5.7.8.4"


def _builder(key: ec.EllipticCurvePrivateKey, issuer_key, *, role="supplier",
             usage=dict(digital_signature=True), key_usage_critical=True, san=True, ski=None):
    bits = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False) | usage
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                      x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(7)
               .not_valid_before(ISSUED).not_valid_after(NOW + datetime.timedelta(days=1))
               .add_extension(x509.KeyUsage(**bits), critical=key_usage_critical)
               .add_extension(x509.SubjectKeyIdentifier(ski or key_identifier(key.public_key())),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(key_identifier(issuer_key.public_key()),
                                                          None, None), critical=False))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.OtherName(HARDWARE_MODULE_NAME, hardware_module_name(5))]), critical=False)
    return builder


P256 = ec.SECP256R1()


@pytest.mark.parametrize("case, rule", [
    ("P-384 key", "not an ECDSA P-256"),
    ("both usages", "is not exactly one of"),
    ("no usage bit", "is not exactly one of"),
    ("key usage not critical", "critical"),
    ("SHA-384 signature", "ECDSA-SHA256"),
    ("no subjectAltName", "subjectAltName"),
    ("unknown role", "organisational unit"),
    ("20-byte key id", "subject key identifier"),
])
def test_certificates_outside_the_profile_are_refused(case, rule):
    issuer_key = ec.generate_private_key(P256)
    key = ec.generate_private_key(ec.SECP384R1() if case == "P-384 key" else P256)
    options = {"both usages": dict(usage=dict(digital_signature=True, key_agreement=True)),
               "no usage bit": dict(usage={}),
               "key usage not critical": dict(key_usage_critical=False),
               "no subjectAltName": dict(san=False),
               "unknown role": dict(role="hub"),
               "20-byte key id": dict(ski=bytes(20))}.get(case, {})
    algorithm = hashes.SHA384() if case == "SHA-384 signature" else hashes.SHA256()
    certificate = _builder(key, issuer_key, **options).sign(issuer_key, algorithm)
    with pytest.raises(Refused) as refusal:
        inspect(certificate)
    assert refusal.value.reason is Reason.BAD_PROFILE and rule in str(refusal.value)
    # The same certificate within the profile passes: the case alone broke it.
    assert inspect(_builder(ec.generate_private_key(P256), issuer_key).sign(
        issuer_key, hashes.SHA256())).role is Role.SUPPLIER


# -- path validation --------------------------------------------------------------------

def test_every_party_chains_to_the_root(pki):
    for (role, usage), pair in pki.parties.items():
        info = _validate(pki, pair.certificate)
        assert (info.role, info.usage) == (role, usage)


def test_expired_and_not_yet_valid_certificates_are_refused(pki):
    key = ec.generate_private_key(P256)
    short = pki.certify(key, Role.SUPPLIER, Usage.SIGNING, at=ISSUED,
                        until=NOW - datetime.timedelta(seconds=1), identity=9).certificate
    with pytest.raises(Refused) as refusal:
        _validate(pki, short)
    assert refusal.value.reason is Reason.EXPIRED
    assert _validate(pki, short, at=ISSUED).identity == 9
    with pytest.raises(Refused) as refusal:
        _validate(pki, short, at=ISSUED - datetime.timedelta(seconds=1))
    assert refusal.value.reason is Reason.EXPIRED


def test_revoked_certificate_and_revoked_ca_are_refused(pki):
    supplier = pki.parties[Role.SUPPLIER, Usage.SIGNING].certificate
    supplier_ca = pki.cas[Role.SUPPLIER]
    listing_supplier = [issue_crl(supplier_ca, ISSUED, (supplier,)), pki.crls[Role.ROOT]]
    with pytest.raises(Refused) as refusal:
        _validate(pki, supplier, crls=listing_supplier)
    assert refusal.value.reason is Reason.REVOKED and "supplier" in str(refusal.value)
    listing_ca = [pki.crls[Role.SUPPLIER], issue_crl(pki.root, ISSUED, (supplier_ca.certificate,))]
    with pytest.raises(Refused) as refusal:
        _validate(pki, supplier, crls=listing_ca)
    assert refusal.value.reason is Reason.REVOKED and "supplier CA" in str(refusal.value)
    # Other CAs' revocations do not touch it.
    network = pki.parties[Role.NETWORK, Usage.SIGNING].certificate
    _validate(pki, supplier, crls=[issue_crl(pki.cas[Role.SUPPLIER], ISSUED, (network,)),
                                   pki.crls[Role.ROOT]])


def test_missing_stale_or_forged_crls_are_refused(pki):
    supplier = pki.parties[Role.SUPPLIER, Usage.SIGNING].certificate
    with pytest.raises(Refused) as refusal:
        _validate(pki, supplier, crls=[pki.crls[Role.ROOT]])
    assert refusal.value.reason is Reason.REVOCATION_UNKNOWN
    with pytest.raises(Refused) as refusal:
        _validate(pki, supplier, at=ISSUED + datetime.timedelta(days=400))
    assert refusal.value.reason is Reason.REVOCATION_UNKNOWN
    # A CRL with the supplier CA's name, signed by another key, is no CRL of it.
    impostor = type(pki.cas[Role.SUPPLIER])(pki.cas[Role.NETWORK].key,
                                            pki.cas[Role.SUPPLIER].certificate)
    with pytest.raises(Refused) as refusal:
        _validate(pki, supplier, crls=[issue_crl(impostor, ISSUED), pki.crls[Role.ROOT]])
    assert refusal.value.reason is Reason.BAD_SIGNATURE


def test_a_chain_that_does_not_reach_the_anchor_is_refused(pki):
    other = DemoPki.generate(DEMO_METER_ID, at=ISSUED)
    stranger = other.parties[Role.SUPPLIER, Usage.SIGNING].certificate
    with pytest.raises(Refused) as refusal:
        validate_path(stranger, other.credentials(stranger).intermediates, pki.root.certificate,
                      list(pki.crls.values()), at=NOW)
    assert refusal.value.reason is Reason.UNTRUSTED
    # Its CA missing from the chain: nothing links it to the root either.
    supplier = pki.parties[Role.SUPPLIER, Usage.SIGNING].certificate
    with pytest.raises(Refused) as refusal:
        validate_path(supplier, [], pki.root.certificate, list(pki.crls.values()), at=NOW)
    assert refusal.value.reason is Reason.UNTRUSTED


def test_a_certificate_from_another_roles_ca_is_refused(pki):
    """A network CA certifying a 'supplier' is not believed: each role has its CA."""
    key = ec.generate_private_key(P256)
    network_ca = pki.cas[Role.NETWORK]
    forged = issue(subject_key=key.public_key(), role=Role.SUPPLIER, usage=Usage.SIGNING,
                   common_name="supplier?", issuer_key=network_ca.key,
                   issuer=network_ca.certificate, not_before=ISSUED,
                   not_after=NOW + datetime.timedelta(days=1),
                   identity=PARTY_IDENTITIES[Role.SUPPLIER])
    with pytest.raises(Refused) as refusal:
        _validate(pki, forged)
    assert refusal.value.reason is Reason.WRONG_ROLE and "not by a supplier CA" in str(refusal.value)


def test_a_certificate_with_a_forged_signature_is_refused(pki):
    """Signed by a key that is not its CA's, under the CA's name and key id."""
    key = ec.generate_private_key(P256)
    supplier_ca = pki.cas[Role.SUPPLIER]
    forged = issue(subject_key=key.public_key(), role=Role.SUPPLIER, usage=Usage.SIGNING,
                   common_name="forged", issuer_key=ec.generate_private_key(P256),
                   issuer=supplier_ca.certificate, not_before=ISSUED,
                   not_after=NOW + datetime.timedelta(days=1), identity=3)
    # issue() put the forger's key id in; give it the CA's so only the signature is wrong.
    forged_der = forged.public_bytes(serialization.Encoding.DER)
    forger_id = forged.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier).value.key_identifier
    ca_id = inspect(supplier_ca.certificate).key_id
    forged = x509.load_der_x509_certificate(forged_der.replace(forger_id, ca_id))
    with pytest.raises(Refused) as refusal:
        _validate(pki, forged)
    assert refusal.value.reason is Reason.BAD_SIGNATURE


# -- key agreement ----------------------------------------------------------------------

def _cavp_static_unified_sha256_p256() -> list[dict[str, str]]:
    """NIST CAVP KAS ECC static unified (C(0e, 2s)) with the concatenation KDF, P-256 and
    SHA-256 (parameter set EC), the cases that pass, from cryptography-vectors."""
    path = (Path(cryptography_vectors.__file__).parent / "asymmetric" / "ECDH"
            / "KASValidityTest_ECCStaticUnified_KDFConcat_NOKC_init.fax")
    cases, current, section = [], {}, None
    for line in path.read_text().splitlines():
        if line.startswith("["):
            section = line
        elif " = " in line and section == "[EC - SHA256]":
            name, value = line.split(" = ")
            current[name] = value
            if name == "Result":
                if value.startswith("P"):
                    cases.append(current)
                current = {}
    return cases


def test_agreement_matches_the_nist_static_unified_vectors():
    cases = _cavp_static_unified_sha256_p256()
    assert len(cases) >= 5
    for case in cases:
        own = ec.derive_private_key(int(case["dsIUT"], 16), P256)
        peer = ec.EllipticCurvePublicNumbers(int(case["QsCAVSx"], 16), int(case["QsCAVSy"], 16),
                                            P256).public_key()
        assert agree(own, peer, bytes.fromhex(case["OI"])) == bytes.fromhex(case["DKM"])


def test_other_info_is_the_gb_layout():
    assert other_info(3, 0x1122334455667788, 0x0252454600000001) == bytes.fromhex(
        "60857405080300" "1122334455667788" "0252454600000001" "03")
    assert ALGORITHM_ID == bytes.fromhex("60857405080300")


def test_both_ends_agree_on_every_slot_key_and_no_two_are_alike(pki):
    meter_key = pki.parties[Role.METER, Usage.KEY_AGREEMENT]
    parties = {role: pki.parties[role, Usage.KEY_AGREEMENT].info
               for role in (Role.SUPPLIER, Role.BROKER, Role.NETWORK, Role.MANUFACTURER)}
    keyset = derive_keyset(meter_key.key, DEMO_METER_ID, parties)
    assert set(keyset.keys) == set(Authority) == set(GATEWARE_SLOT)
    for role in parties:
        party = pki.parties[role, Usage.KEY_AGREEMENT]
        theirs = party_keys(role, party.key, PARTY_IDENTITIES[role], meter_key.info)
        assert theirs and all(keyset.key(authority) == key for authority, key in theirs.items())
    assert len(set(keyset.keys.values())) == len(keyset.keys)
    # Another meter (its own key pair) shares no key with this one: no fleet keys.
    other = DemoPki.generate(DEMO_METER_ID + 1, at=ISSUED)
    other_keys = derive_keyset(other.parties[Role.METER, Usage.KEY_AGREEMENT].key,
                               DEMO_METER_ID + 1, parties)
    assert not set(other_keys.keys.values()) & set(keyset.keys.values())


def test_agreement_refuses_signing_certificates_and_other_curves(pki):
    meter_key = pki.parties[Role.METER, Usage.KEY_AGREEMENT].key
    parties = {role: pki.parties[role, Usage.KEY_AGREEMENT].info
               for role in (Role.SUPPLIER, Role.BROKER, Role.NETWORK, Role.MANUFACTURER)}
    parties[Role.NETWORK] = pki.parties[Role.NETWORK, Usage.SIGNING].info
    with pytest.raises(Refused) as refusal:
        derive_keyset(meter_key, DEMO_METER_ID, parties)
    assert refusal.value.reason is Reason.WRONG_ROLE
    with pytest.raises(Refused) as refusal:
        agree(meter_key, ec.generate_private_key(ec.SECP384R1()).public_key(), b"")
    assert refusal.value.reason is Reason.BAD_PROFILE


# -- fuzzing ----------------------------------------------------------------------------

FUZZ = settings(max_examples=200, deadline=None, database=None)


def _read_cleanly(data: bytes) -> None:
    """A certificate's bytes are profile-checked and validated, or cleanly refused."""
    try:
        info = inspect(load_certificate(data))
    except Refused as refusal:
        assert refusal.reason in (Reason.MALFORMED, Reason.BAD_PROFILE)
    else:
        assert info.role in Role


@FUZZ
@given(data=st.binary(max_size=600))
def test_fuzz_the_certificate_parser_with_any_bytes(data):
    _read_cleanly(data)


_GENUINE = DemoPki.generate(DEMO_METER_ID, at=ISSUED)
_METER_DER = _GENUINE.parties[Role.METER, Usage.SIGNING].certificate.public_bytes(
    serialization.Encoding.DER)


def _certificate_mutations(max_examples):
    @settings(FUZZ, max_examples=max_examples)
    @given(edits=st.lists(st.tuples(st.integers(0, len(_METER_DER) - 1), st.integers(1, 255)),
                          min_size=1, max_size=4, unique_by=lambda edit: edit[0]))
    def test(edits):
        mutated = bytearray(_METER_DER)
        for position, flips in edits:
            mutated[position] ^= flips
        _read_cleanly(bytes(mutated))
        genuine = _GENUINE.credentials(_GENUINE.parties[Role.METER, Usage.SIGNING].certificate)
        try:
            validate_path(load_certificate(bytes(mutated)), genuine.intermediates,
                          _GENUINE.root.certificate, genuine.crls, at=NOW)
        except Refused:
            pass
        else:   # only a change outside what the CA signed can leave it valid
            assert load_certificate(bytes(mutated)).tbs_certificate_bytes == \
                _GENUINE.parties[Role.METER, Usage.SIGNING].certificate.tbs_certificate_bytes
    return test


test_fuzz_mutated_certificates_are_refused_cleanly = _certificate_mutations(300)
test_fuzz_mutated_certificates_long = pytest.mark.extended(_certificate_mutations(20_000))


@FUZZ
@given(data=st.binary(max_size=40))
def test_fuzz_the_hardware_module_name_parser(data):
    try:
        identity = parse_hardware_module_name(data)
    except Refused as refusal:
        assert refusal.reason is Reason.BAD_PROFILE
    else:
        assert hardware_module_name(identity) == data
