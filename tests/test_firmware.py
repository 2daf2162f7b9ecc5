"""Signed firmware: every one-bit change refused, only the manufacturer signs, and the
A/B slots boot a new image once, keep it only if its self-test passes, and fall back
otherwise (also after a reset in the middle)."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings, strategies as st

from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.soft.pki.demo import DemoPki
from refmeter.soft.pki.errors import Reason, Refused
from refmeter.soft.pki.firmware import FirmwareImage, ImageKind, sign_image, verify_image
from refmeter.soft.pki.roles import Role, Usage
from refmeter.soft.pki.slots import (BootRecord, FirmwareSlots, Slot, activate, boot, confirm,
                                     reject)

from pki_helpers import ISSUED

FUZZ = settings(max_examples=200, deadline=None, database=None)
PKI = DemoPki.generate(DEMO_METER_ID, at=ISSUED)
MANUFACTURER = PKI.parties[Role.MANUFACTURER, Usage.SIGNING]
BODY = bytes(range(48))


def _signed(body: bytes = BODY, version: int = 2, kind=ImageKind.BITSTREAM) -> bytes:
    return sign_image(body, kind=kind, version=version, key=MANUFACTURER.key,
                      signer=MANUFACTURER.info)


def test_a_signed_image_verifies_to_its_body():
    for kind in ImageKind:
        assert verify_image(_signed(kind=kind), MANUFACTURER.info) == FirmwareImage(kind, 2, BODY)


def test_every_one_bit_flip_anywhere_in_an_image_is_refused():
    image = _signed()
    reasons = set()
    for bit in range(len(image) * 8):
        flipped = bytearray(image)
        flipped[bit // 8] ^= 0x80 >> bit % 8
        with pytest.raises(Refused) as refusal:
            verify_image(bytes(flipped), MANUFACTURER.info)
        reasons.add(refusal.value.reason)
    assert reasons == {Reason.MALFORMED, Reason.UNTRUSTED, Reason.BAD_SIGNATURE, Reason.BAD_DIGEST}


def test_only_the_manufacturers_signing_anchor_signs_images():
    supplier = PKI.parties[Role.SUPPLIER, Usage.SIGNING]
    with pytest.raises(Refused) as refusal:
        verify_image(_signed(), supplier.info)
    assert refusal.value.reason is Reason.WRONG_ROLE
    with pytest.raises(Refused) as refusal:
        sign_image(BODY, kind=ImageKind.BITSTREAM, version=1, key=supplier.key, signer=supplier.info)
    assert refusal.value.reason is Reason.WRONG_ROLE
    other = DemoPki.generate(DEMO_METER_ID, at=ISSUED).parties[Role.MANUFACTURER, Usage.SIGNING]
    with pytest.raises(Refused) as refusal:
        verify_image(_signed(), other.info)
    assert refusal.value.reason is Reason.UNTRUSTED
    with pytest.raises(ValueError, match="not the one"):
        sign_image(BODY, kind=ImageKind.BITSTREAM, version=1,
                   key=ec.generate_private_key(ec.SECP256R1()), signer=MANUFACTURER.info)


def test_truncated_or_extended_images_are_malformed():
    image = _signed()
    for damaged in (image[:-1], image + b"\0", image[:100]):
        with pytest.raises(Refused) as refusal:
            verify_image(damaged, MANUFACTURER.info)
        assert refusal.value.reason is Reason.MALFORMED


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_the_image_header_parser(data):
    with pytest.raises(Refused):
        verify_image(data, MANUFACTURER.info)


@FUZZ
@given(prefix=st.integers(0, 118), tail=st.binary(max_size=64))
def test_fuzz_images_spliced_from_a_genuine_header(prefix, tail):
    data = _signed()[:prefix] + tail
    try:
        image = verify_image(data, MANUFACTURER.info)
    except Refused:
        return
    assert data == _signed()[:118] + BODY and image.body == BODY   # only the genuine one


# -- the slot state machine ---------------------------------------------------------------

def test_a_trial_boots_once_and_is_kept_only_when_confirmed():
    record = BootRecord(Slot.A)
    assert boot(record) == (Slot.A, record)
    trial = activate(record)
    slot, trial = boot(trial)
    assert slot is Slot.B and trial == BootRecord(Slot.A, Slot.B, tried=True)
    assert confirm(trial) == BootRecord(Slot.B)
    assert reject(trial) == BootRecord(Slot.A)
    # Reset before the self-test confirmed: the next boot falls back and forgets the trial.
    assert boot(trial) == (Slot.A, BootRecord(Slot.A))
    with pytest.raises(ValueError):
        confirm(BootRecord(Slot.A))
    with pytest.raises(ValueError):
        activate(trial)


@FUZZ
@given(events=st.lists(st.sampled_from(["activate", "boot", "confirm", "reject"]), max_size=30))
def test_no_sequence_boots_an_unconfirmed_image_twice(events):
    """Whatever happens, a boot is of the confirmed slot, or the first boot of a trial;
    the confirmed slot changes only by a confirm of a trial that booted."""
    record = BootRecord(Slot.A)
    for event in events:
        if event == "boot":
            slot, after = boot(record)
            assert slot is record.active or (slot is record.trial and not record.tried)
        elif event == "activate" and record.trial is None:
            after = activate(record)
        elif event == "confirm" and record.tried:
            after = confirm(record)
            assert after.active is record.trial
        elif event == "reject":
            after = reject(record)
        else:
            continue
        assert after.active is record.active or event == "confirm"
        record = after


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_activation_keeps_a_good_image_and_restores_the_previous_after_a_bad_one(tmp_path):
    slots = FirmwareSlots(tmp_path)
    tested = []
    first = slots.activate(_signed(b"v2 bitstream", 2), MANUFACTURER.info,
                           lambda path: tested.append(path.read_bytes()) or True)
    assert first.slot is Slot.B and first.confirmed and tested == [b"v2 bitstream"]
    failing = slots.activate(_signed(b"v3 bitstream", 3), MANUFACTURER.info, lambda path: False)
    assert failing == type(failing)(Slot.B, False)
    reopened = FirmwareSlots(tmp_path)
    assert reopened.record == BootRecord(Slot.B) and reopened.boot() is Slot.B
    assert reopened.image_path(Slot.B).read_bytes() == b"v2 bitstream"
    assert reopened.activate(_signed(b"v3 fixed", 3), MANUFACTURER.info, lambda path: True) \
        .slot is Slot.A


def test_a_reset_during_the_self_test_falls_back_at_the_next_boot(tmp_path):
    slots = FirmwareSlots(tmp_path)
    slots.activate(_signed(b"v2", 2), MANUFACTURER.info, lambda path: True)

    def power_cut(path):
        raise SystemExit("reset")
    with pytest.raises(SystemExit):
        slots.activate(_signed(b"v3 hangs", 3), MANUFACTURER.info, power_cut)
    after_reset = FirmwareSlots(tmp_path)
    assert after_reset.record.tried and after_reset.boot() is Slot.B
    assert after_reset.record == BootRecord(Slot.B)


def test_refused_images_change_no_slot(tmp_path):
    slots = FirmwareSlots(tmp_path)
    slots.activate(_signed(b"v5", 5), MANUFACTURER.info, lambda path: True)
    before = _files(tmp_path)
    flipped = bytearray(_signed(b"v6", 6))
    flipped[-1] ^= 1
    for data, reason in [(bytes(flipped), Reason.BAD_DIGEST), (_signed(b"v5 again", 5), Reason.ROLLBACK),
                         (_signed(b"v4", 4), Reason.ROLLBACK)]:
        with pytest.raises(Refused) as refusal:
            slots.activate(data, MANUFACTURER.info, lambda path: True)
        assert refusal.value.reason is reason
        assert _files(tmp_path) == before
