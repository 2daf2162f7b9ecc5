"""The secure command path: signed commands checked by the control module, each
refusal with its reason and no change of state, counters that survive a restart,
trust anchors replaced only by their own role or recovery, and Hypothesis fuzzing
of the command and credentials parsers."""

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings, strategies as st

from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.soft.pki.access import (ACCESS, MESSAGES, DataObject, MessageCode, Right,
                                     access_markdown)
from refmeter.soft.pki.anchors import Credentials
from refmeter.soft.pki.control import COUNTERS_FILE
from refmeter.soft.pki.counters import OriginatorCounters
from refmeter.soft.pki.demo import PARTY_IDENTITIES, DemoPki, issue_crl
from refmeter.soft.durable import write_durably
from refmeter.soft.pki.errors import Reason, Refused
from refmeter.soft.pki.message import SignedCommand
from refmeter.soft.pki.roles import Role, Usage

from pki_helpers import ISSUED, NOW, broker_key, command, commission, reopen

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
FUZZ_LONG = settings(FUZZ, max_examples=20_000)


@pytest.fixture(scope="module")
def pki() -> DemoPki:
    return DemoPki.generate(DEMO_METER_ID, at=ISSUED)


class Recorder:
    """Handlers that record what reached them and answer with a payload of their own."""

    def __init__(self):
        self.calls: list[tuple[MessageCode, int, Role]] = []

    def handler(self, code: MessageCode):
        def handle(command: SignedCommand, role: Role) -> bytes:
            self.calls.append((command.code, command.counter, role))
            return b"reply to " + code.name.encode()
        return handle

    def all(self):
        return {code: self.handler(code) for code in MessageCode
                if code is not MessageCode.REPLACE_ANCHOR}


@pytest.fixture
def meter(pki, tmp_path):
    """A commissioned control module with recording handlers for every message."""
    recorder = Recorder()
    control = commission(pki, tmp_path / "state", recorder.all())
    control.recorder = recorder
    return control


def _state(control) -> tuple:
    files = tuple((path.name, path.read_bytes()) for path in sorted(control.counters.path.parent.iterdir()))
    return files, tuple(control.recorder.calls)


def _refused(control, data: bytes, reason: Reason) -> Refused:
    """``data`` is refused for ``reason`` and nothing changes: files, handlers, counters."""
    before = _state(control)
    with pytest.raises(Refused) as refusal:
        control.handle(data)
    assert refusal.value.reason is reason, refusal.value
    assert _state(control) == before
    return refusal.value


def test_a_verified_command_reaches_its_handler_and_its_counter_is_on_disk(pki, meter):
    reply = meter.handle(command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 5).to_bytes())
    assert reply == b"reply to READ_ENERGY"
    assert meter.recorder.calls == [(MessageCode.READ_ENERGY, 5, Role.SUPPLIER)]
    assert OriginatorCounters(meter.counters.path).last(PARTY_IDENTITIES[Role.SUPPLIER]) == 5
    # A critical command with the broker's MAC, and a lower counter from another originator.
    meter.handle(command(pki, Role.SUPPLIER, MessageCode.DISCONNECT_SUPPLY, 6).to_bytes())
    meter.handle(command(pki, Role.BROKER, MessageCode.SET_CLOCK, 1, bytes(8)).to_bytes())
    assert [call[0] for call in meter.recorder.calls][1:] == [MessageCode.DISCONNECT_SUPPLY,
                                                               MessageCode.SET_CLOCK]


def test_a_batch_is_answered_in_order_with_one_durable_write(pki, meter, monkeypatch):
    """Group commit: each command checked as alone, the accepted counters written once
    before any handler runs, refusals answered in place."""
    writes = []
    monkeypatch.setattr("refmeter.soft.pki.counters.write_durably",
                        lambda path, data: (writes.append(meter.recorder.calls[:]),
                                            write_durably(path, data)))
    first = command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 3).to_bytes()
    forged = bytearray(command(pki, Role.BROKER, MessageCode.SET_CLOCK, 1, bytes(8)).to_bytes())
    forged[-1] ^= 1
    outcomes = meter.handle_batch([
        first,
        first,                                                                   # replayed
        command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 2).to_bytes(),      # lowered
        bytes(forged),
        command(pki, Role.BROKER, MessageCode.SET_CLOCK, 1, bytes(8)).to_bytes(),
        command(pki, Role.SUPPLIER, MessageCode.DISCONNECT_SUPPLY, 4).to_bytes(),
    ])
    assert [outcome.reason if isinstance(outcome, Refused) else outcome for outcome in outcomes] \
        == [b"reply to READ_ENERGY", Reason.REPLAYED, Reason.REPLAYED, Reason.BAD_SIGNATURE,
            b"reply to SET_CLOCK", b"reply to DISCONNECT_SUPPLY"]
    assert writes == [[]]       # one write, before any handler ran
    restarted = OriginatorCounters(meter.counters.path)
    assert (restarted.last(PARTY_IDENTITIES[Role.SUPPLIER]),
            restarted.last(PARTY_IDENTITIES[Role.BROKER])) == (4, 1)


def test_a_batch_checks_what_follows_an_anchor_replacement_against_the_new_anchor(pki, meter):
    new = pki.certify(ec.generate_private_key(ec.SECP256R1()), Role.NETWORK, Usage.SIGNING,
                      at=ISSUED, until=NOW + datetime.timedelta(days=30),
                      identity=PARTY_IDENTITIES[Role.NETWORK])
    by_new_key = SignedCommand.sign(new.key, code=MessageCode.READ_ENERGY,
                                    originator=PARTY_IDENTITIES[Role.NETWORK],
                                    recipient=DEMO_METER_ID, counter=1).to_bytes()
    outcomes = meter.handle_batch([_replacement(pki, Role.RECOVERY, new.certificate, 1),
                                   by_new_key])
    assert outcomes == [b"", b"reply to READ_ENERGY"]


def test_a_forged_signature_is_refused(pki, meter):
    genuine = command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 1).to_bytes()
    forged = bytearray(genuine)
    forged[-1] ^= 0x01
    _refused(meter, bytes(forged), Reason.BAD_SIGNATURE)
    # Signed by a key of the network operator under the supplier's identity.
    impostor = SignedCommand.sign(pki.parties[Role.NETWORK, Usage.SIGNING].key,
                                  code=MessageCode.READ_ENERGY,
                                  originator=PARTY_IDENTITIES[Role.SUPPLIER],
                                  recipient=DEMO_METER_ID, counter=1)
    _refused(meter, impostor.to_bytes(), Reason.BAD_SIGNATURE)
    # A changed field under the genuine signature.
    changed = bytearray(genuine)
    changed[22] ^= 0x80   # the counter's top byte
    _refused(meter, bytes(changed), Reason.BAD_SIGNATURE)


def test_signatures_by_the_wrong_role_are_refused(pki, meter):
    """The network operator reads voltage quality but not the load profile; only the
    supplier disconnects; the key-agreement key signs nothing."""
    meter.handle(command(pki, Role.NETWORK, MessageCode.READ_VOLTAGE_QUALITY, 1).to_bytes())
    refusal = _refused(meter, command(pki, Role.NETWORK, MessageCode.READ_LOAD_PROFILE, 2).to_bytes(),
                       Reason.NOT_PERMITTED)
    assert "network may not read the load profile" in str(refusal)
    _refused(meter, command(pki, Role.NETWORK, MessageCode.DISCONNECT_SUPPLY, 2).to_bytes(),
             Reason.NOT_PERMITTED)
    _refused(meter, command(pki, Role.MANUFACTURER, MessageCode.SET_CLOCK, 1, bytes(8)).to_bytes(),
             Reason.NOT_PERMITTED)
    with_agreement_key = SignedCommand.sign(pki.parties[Role.SUPPLIER, Usage.KEY_AGREEMENT].key,
                                            code=MessageCode.READ_ENERGY,
                                            originator=PARTY_IDENTITIES[Role.SUPPLIER],
                                            recipient=DEMO_METER_ID, counter=1)
    _refused(meter, with_agreement_key.to_bytes(), Reason.BAD_SIGNATURE)


def test_replayed_equal_and_lowered_counters_are_refused_also_after_a_restart(pki, meter, tmp_path):
    accepted = command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 10)
    meter.handle(accepted.to_bytes())
    _refused(meter, accepted.to_bytes(), Reason.REPLAYED)
    _refused(meter, command(pki, Role.SUPPLIER, MessageCode.SET_CLOCK, 10, bytes(8)).to_bytes(),
             Reason.REPLAYED)
    _refused(meter, command(pki, Role.SUPPLIER, MessageCode.SET_CLOCK, 9, bytes(8)).to_bytes(),
             Reason.REPLAYED)
    restarted = reopen(pki, tmp_path / "state", meter.recorder.all())
    restarted.recorder = meter.recorder
    for counter in (10, 9, 1):
        _refused(restarted, command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, counter).to_bytes(),
                 Reason.REPLAYED)
    restarted.handle(command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 11).to_bytes())


def test_critical_commands_need_the_brokers_mac(pki, meter):
    bare = command(pki, Role.SUPPLIER, MessageCode.DISCONNECT_SUPPLY, 1, broker_mac=False)
    _refused(meter, bare.to_bytes(), Reason.BROKER_MAC_MISSING)
    wrong_key = bare.with_broker_mac(bytes(16))
    _refused(meter, wrong_key.to_bytes(), Reason.BAD_BROKER_MAC)
    # The broker's MAC from another command does not carry over.
    other = command(pki, Role.SUPPLIER, MessageCode.DISCONNECT_SUPPLY, 2)
    moved = SignedCommand.parse(bare.to_bytes() + other.broker_mac)
    _refused(meter, moved.to_bytes(), Reason.BAD_BROKER_MAC)
    meter.handle(bare.with_broker_mac(broker_key(pki)).to_bytes())
    assert all(MESSAGES[code].critical for code in (MessageCode.DISCONNECT_SUPPLY,
               MessageCode.ARM_RECONNECTION, MessageCode.ACTIVATE_FIRMWARE,
               MessageCode.UPDATE_TARIFF, MessageCode.REPLACE_ANCHOR))


def test_commands_for_others_or_from_strangers_are_refused(pki, meter):
    _refused(meter, command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 1,
                            recipient=DEMO_METER_ID + 1).to_bytes(), Reason.WRONG_RECIPIENT)
    stranger = SignedCommand.sign(ec.generate_private_key(ec.SECP256R1()),
                                  code=MessageCode.READ_ENERGY, originator=0x1234,
                                  recipient=DEMO_METER_ID, counter=1)
    _refused(meter, stranger.to_bytes(), Reason.UNKNOWN_ORIGINATOR)
    # The meter's own signing key is no anchor of its commands.
    own = SignedCommand.sign(pki.parties[Role.METER, Usage.SIGNING].key,
                             code=MessageCode.READ_ENERGY, originator=DEMO_METER_ID,
                             recipient=DEMO_METER_ID, counter=1)
    _refused(meter, own.to_bytes(), Reason.UNKNOWN_ORIGINATOR)


def test_an_expired_signing_anchor_signs_nothing(pki, tmp_path):
    commission(pki, tmp_path / "state")
    expiry = pki.parties[Role.SUPPLIER, Usage.SIGNING].certificate.not_valid_after_utc
    late = reopen(pki, tmp_path / "state", Recorder().all(),
                  clock=lambda: expiry + datetime.timedelta(seconds=1))
    late.recorder = Recorder()
    _refused(late, command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 1).to_bytes(),
             Reason.EXPIRED)


def test_unsupported_and_malformed_commands_are_refused(pki, tmp_path):
    control = commission(pki, tmp_path / "state")
    control.recorder = Recorder()
    _refused(control, command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 1).to_bytes(),
             Reason.UNSUPPORTED)
    genuine = command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 1, b"abc").to_bytes()
    for malformed, says in [(genuine[:20], "shorter than a command header"),
                            (b"\x02" + genuine[1:], "version 2"),
                            (genuine[:1] + b"\x7f\x7f" + genuine[3:], "unknown message code"),
                            (genuine[:-1], "expected"), (genuine + bytes(3), "expected")]:
        assert says in str(_refused(control, malformed, Reason.MALFORMED))
    short_clock = command(pki, Role.SUPPLIER, MessageCode.SET_CLOCK, 1, bytes(3)).to_bytes()
    assert "SET_CLOCK carries 8 payload bytes, not 3" in str(
        _refused(control, short_clock, Reason.MALFORMED))


def test_a_handler_that_fails_still_uses_up_the_counter(pki, tmp_path):
    def broken(command, role):
        raise RuntimeError("the meter did not answer")
    control = reopen(pki, commission(pki, tmp_path / "state").counters.path.parent,
                     {MessageCode.READ_ENERGY: broken})
    with pytest.raises(RuntimeError):
        control.handle(command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 3).to_bytes())
    with pytest.raises(Refused) as refusal:
        control.handle(command(pki, Role.SUPPLIER, MessageCode.READ_ENERGY, 3).to_bytes())
    assert refusal.value.reason is Reason.REPLAYED


def test_the_access_table_covers_every_object_and_role_and_every_message_is_used():
    roles = {Role.SUPPLIER, Role.NETWORK, Role.BROKER, Role.RECOVERY, Role.MANUFACTURER}
    assert set(ACCESS) == set(DataObject) and all(set(row) == roles for row in ACCESS.values())
    assert set(MESSAGES) == set(MessageCode)
    assert Right.READ in ACCESS[DataObject.VOLTAGE_QUALITY][Role.NETWORK]
    assert Right.READ not in ACCESS[DataObject.LOAD_PROFILE][Role.NETWORK]


def test_the_documented_access_table_is_the_one_enforced():
    assert access_markdown() in (Path(__file__).parent.parent / "docs" / "pki.md").read_text()


# -- durable state ----------------------------------------------------------------------

def test_durable_writes_are_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "counters.json"
    write_durably(path, b"old")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))

    def power_cut(source, target):
        raise OSError("power cut before the rename")
    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError):
        write_durably(path, b"new")
    assert path.read_bytes() == b"old" and len(synced) == 1   # the file, not yet the directory
    monkeypatch.undo()
    write_durably(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["counters.json"]


def test_a_damaged_counter_file_stops_the_meter_rather_than_forgetting(tmp_path):
    path = tmp_path / COUNTERS_FILE
    path.write_text('{"0252454600000001": "seven"')
    with pytest.raises(ValueError, match="not a counter file"):
        OriginatorCounters(path)


# -- trust anchors ----------------------------------------------------------------------

def _replacement(pki: DemoPki, sender: Role, certificate, counter: int, crls=None) -> bytes:
    credentials = pki.credentials(certificate)
    if crls is not None:
        credentials = Credentials(credentials.certificate, credentials.intermediates, tuple(crls))
    return command(pki, sender, MessageCode.REPLACE_ANCHOR, counter,
                   credentials.to_bytes()).to_bytes()


def test_a_role_replaces_its_own_anchor_and_the_new_key_takes_over(pki, meter, tmp_path):
    old_keys = meter.keyset()
    changes = []
    control = reopen(pki, tmp_path / "state",
                     on_keys_changed=lambda old, new: changes.append((old, new)))
    new = pki.certify(ec.generate_private_key(ec.SECP256R1()), Role.SUPPLIER, Usage.KEY_AGREEMENT,
                      at=ISSUED, until=NOW + datetime.timedelta(days=30),
                      identity=PARTY_IDENTITIES[Role.SUPPLIER])
    control.handle(_replacement(pki, Role.SUPPLIER, new.certificate, 1))
    restarted = reopen(pki, tmp_path / "state")
    assert restarted.anchors[Role.SUPPLIER, Usage.KEY_AGREEMENT].certificate == new.certificate
    changed = {authority for authority in old_keys.keys
               if old_keys.key(authority) != restarted.keyset().key(authority)}
    assert {authority.slot_name for authority in changed} == {"supplier", "reading"}
    # The gateware is told, with both key sets (docs/pki.md: GatewareLink.rekey).
    assert [(old.keys, new.keys) for old, new in changes] == \
        [(old_keys.keys, restarted.keyset().keys)]


def test_a_new_signing_anchor_retires_the_old_key(pki, meter):
    new = pki.certify(ec.generate_private_key(ec.SECP256R1()), Role.NETWORK, Usage.SIGNING,
                      at=ISSUED, until=NOW + datetime.timedelta(days=30),
                      identity=PARTY_IDENTITIES[Role.NETWORK])
    # Recovery may replace any role's anchor.
    meter.handle(_replacement(pki, Role.RECOVERY, new.certificate, 1))
    _refused(meter, command(pki, Role.NETWORK, MessageCode.READ_ENERGY, 1).to_bytes(),
             Reason.BAD_SIGNATURE)
    meter.handle(SignedCommand.sign(new.key, code=MessageCode.READ_ENERGY,
                                    originator=PARTY_IDENTITIES[Role.NETWORK],
                                    recipient=DEMO_METER_ID, counter=1).to_bytes())


def test_anchor_replacements_that_are_refused_change_nothing(pki, meter):
    def certificate(role, usage, *, until=NOW + datetime.timedelta(days=30), source=pki):
        return source.certify(ec.generate_private_key(ec.SECP256R1()), role, usage, at=ISSUED,
                              until=until, identity=PARTY_IDENTITIES[role]).certificate
    network = certificate(Role.NETWORK, Usage.KEY_AGREEMENT)
    refusal = _refused(meter, _replacement(pki, Role.SUPPLIER, network, 1), Reason.WRONG_ROLE)
    assert "only its own role or recovery" in str(refusal)
    expired = certificate(Role.SUPPLIER, Usage.SIGNING, until=NOW - datetime.timedelta(hours=1))
    _refused(meter, _replacement(pki, Role.SUPPLIER, expired, 1), Reason.EXPIRED)
    revoked = certificate(Role.SUPPLIER, Usage.SIGNING)
    crls = [issue_crl(pki.cas[Role.SUPPLIER], ISSUED, (revoked,)), pki.crls[Role.ROOT]]
    _refused(meter, _replacement(pki, Role.SUPPLIER, revoked, 1, crls), Reason.REVOKED)
    other = DemoPki.generate(DEMO_METER_ID, at=ISSUED)
    stranger = certificate(Role.SUPPLIER, Usage.SIGNING, source=other)
    _refused(meter, command(pki, Role.SUPPLIER, MessageCode.REPLACE_ANCHOR, 1,
                            other.credentials(stranger).to_bytes()).to_bytes(), Reason.UNTRUSTED)
    # A network signing certificate with the supplier's identity would make the
    # supplier's commands ambiguous.
    twin = pki.certify(ec.generate_private_key(ec.SECP256R1()), Role.NETWORK, Usage.SIGNING,
                       at=ISSUED, until=NOW + datetime.timedelta(days=30),
                       identity=PARTY_IDENTITIES[Role.SUPPLIER]).certificate
    assert "share the identity" in str(
        _refused(meter, _replacement(pki, Role.RECOVERY, twin, 1), Reason.WRONG_ROLE))
    # A supplier cannot take over the root; recovery can.
    _refused(meter, _replacement(pki, Role.SUPPLIER, other.root.certificate, 1), Reason.WRONG_ROLE)
    meter.handle(_replacement(pki, Role.RECOVERY, other.root.certificate, 1))
    assert meter.anchors[Role.ROOT, Usage.CERTIFICATION].certificate == other.root.certificate


# -- fuzzing ----------------------------------------------------------------------------

def _checks_cleanly(control, data: bytes) -> None:
    """Anything goes in; a reply or a Refused comes out, and a refusal changes nothing."""
    before = _state(control)
    try:
        control.handle(data)
    except Refused:
        assert _state(control) == before


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_the_command_parser_with_any_bytes(data):
    try:
        command = SignedCommand.parse(data)
    except Refused as refusal:
        assert refusal.reason is Reason.MALFORMED
    else:
        assert command.to_bytes() == data


def _mutations(max_examples):
    @settings(FUZZ, max_examples=max_examples)
    @given(position=st.integers(min_value=0), flips=st.integers(min_value=1, max_value=255),
           cut=st.integers(min_value=0, max_value=8), code=st.sampled_from(list(MessageCode)))
    def test(pki, fuzz_meter, position, flips, cut, code):
        control = fuzz_meter
        length = MESSAGES[code].payload_bytes
        genuine = command(pki, Role.SUPPLIER, code, 1 << 40,
                          b"p" * (7 if length is None else length)).to_bytes()
        mutated = bytearray(genuine)
        mutated[position % len(mutated)] ^= flips
        with pytest.raises(Refused):
            control.handle(bytes(mutated))
        _checks_cleanly(control, bytes(mutated[:len(mutated) - cut]))
    return test


@pytest.fixture(scope="module")
def fuzz_meter(pki, tmp_path_factory):
    """One commissioned meter for every example (commissioning per example would spend
    the time budget on key files); the examples must leave it as they found it."""
    recorder = Recorder()
    control = commission(pki, tmp_path_factory.mktemp("fuzz") / "state", recorder.all())
    control.recorder = recorder
    return control


test_fuzz_every_mutation_of_a_signed_command_is_refused = _mutations(150)
test_fuzz_every_mutation_of_a_signed_command_is_refused_long = pytest.mark.extended(_mutations(5_000))


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_the_credentials_parser(data):
    try:
        Credentials.parse(data)
    except Refused as refusal:
        assert refusal.reason is Reason.MALFORMED


def _replacement_mutations(max_examples):
    """Credentials under a genuine signature and MAC (a party may send junk): mutated,
    they reach path validation, which must refuse cleanly."""
    @settings(FUZZ, max_examples=max_examples)
    @given(edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)),
                          min_size=1, max_size=3))
    def test(pki, fuzz_meter, edits):
        control = fuzz_meter
        new = pki.parties[Role.SUPPLIER, Usage.SIGNING].certificate
        payload = bytearray(pki.credentials(new).to_bytes())
        for position, flips in edits:
            payload[position % len(payload)] ^= flips
        try:
            control.anchors.check_replacement(Role.RECOVERY, Credentials.parse(bytes(payload)),
                                              at=NOW)
        except Refused:
            pass
    return test


test_fuzz_mutated_credentials_are_refused_cleanly = _replacement_mutations(150)
test_fuzz_mutated_credentials_long = pytest.mark.extended(_replacement_mutations(5_000))
