"""Authenticated updates and top-up codes: each accepted only when verified, new and
sound, each refusal changing nothing, and the state surviving a restart."""

import datetime
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from refmeter.soft.tariffs.auth import AuthenticationError, EcdsaP256Verifier, HmacSha256Verifier
from refmeter.soft.tariffs.prepayment import TopUpCodes, make_top_up_code
from refmeter.soft.tariffs.store import JsonStore
from refmeter.soft.tariffs.updates import CalorificValueRegister, TariffRegister

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, tzinfo=UTC)
ECONOMY7 = json.loads((Path(__file__).parent / "tariffs_data" / "economy7.json").read_text())
SIGNING_KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())
OTHER_KEY = ec.derive_private_key(0xBAD, ec.SECP256R1())


def signed(document: dict, key=SIGNING_KEY) -> tuple[bytes, bytes]:
    message = json.dumps(document).encode()
    return message, key.sign(message, ec.ECDSA(hashes.SHA256()))


def tariff_update(version: int, activate_at: datetime.datetime, **changes) -> dict:
    return {"kind": "tariff", "activate_at": activate_at.isoformat(),
            "tariff": {**ECONOMY7, "version": version, **changes}}


@pytest.fixture
def register(tmp_path) -> TariffRegister:
    return TariffRegister(EcdsaP256Verifier(SIGNING_KEY.public_key()), JsonStore(tmp_path / "tariff.json"))


# --- Tariffs -----------------------------------------------------------------------------------

def test_tariff_update_is_pending_until_its_utc_time_then_active(register, tmp_path):
    first = datetime.datetime(2026, 3, 2, tzinfo=UTC)
    register.receive(*signed(tariff_update(1, first)), now=NOW)
    register.advance(first)
    april = datetime.datetime(2026, 4, 1, tzinfo=UTC)
    register.receive(*signed(tariff_update(2, april, name="spring")), now=first)
    assert register.active.version == 1
    assert register.pending[0].name == "spring" and register.pending[1] == april
    # Both are readable, and the switch is exactly at the activation instant.
    assert register.tariff_at(april - datetime.timedelta(microseconds=1)).version == 1
    assert register.tariff_at(april).version == 2
    register.advance(april - datetime.timedelta(seconds=1))
    assert register.active.version == 1
    register.advance(april)
    assert (register.active.version, register.pending) == (2, None)
    # A restart reads the same state back.
    again = TariffRegister(EcdsaP256Verifier(SIGNING_KEY.public_key()), JsonStore(tmp_path / "tariff.json"))
    assert again.active == register.active


@pytest.mark.parametrize("make, error, message", [
    (lambda: signed(tariff_update(5, NOW), key=OTHER_KEY), AuthenticationError, "does not verify"),
    (lambda: (signed(tariff_update(5, NOW))[0].replace(b'"30"', b'"3"'), signed(tariff_update(5, NOW))[1]),
     AuthenticationError, "does not verify"),
    (lambda: signed(tariff_update(1, NOW)), AuthenticationError,
     "tariff version 1 is not newer than version 1, already accepted: a replay or a downgrade"),
    (lambda: signed(tariff_update(5, NOW - datetime.timedelta(hours=1))), ValueError,
     "activation time 2026-02-28T23:00:00\\+00:00 is already past"),
    (lambda: signed({**tariff_update(5, NOW), "activate_at": "2026-04-01T00:00"}), ValueError,
     "has no UTC offset"),
    (lambda: signed(tariff_update(5, NOW, standing_charge_per_day="-1")), ValueError, "negative price"),
    (lambda: signed({**tariff_update(5, NOW), "kind": "calorific_value"}), ValueError,
     "not a tariff update"),
])
def test_bad_tariff_update_is_refused_and_changes_nothing(register, tmp_path, make, error, message):
    register.receive(*signed(tariff_update(1, NOW)), now=NOW)
    saved = (tmp_path / "tariff.json").read_bytes()
    with pytest.raises(error, match=message):
        register.receive(*make(), now=NOW)
    assert (tmp_path / "tariff.json").read_bytes() == saved
    assert register.pending[0].version == 1


# --- Calorific values ---------------------------------------------------------------------------

def cv(sequence: int, value: str, effective: datetime.datetime) -> dict:
    return {"kind": "calorific_value", "sequence": sequence, "effective": effective.isoformat(),
            "mj_per_m3": value}


def test_calorific_values_are_verified_bounded_and_kept(tmp_path):
    verifier = EcdsaP256Verifier(SIGNING_KEY.public_key())
    registry = CalorificValueRegister(verifier, JsonStore(tmp_path / "cv.json"))
    registry.receive(*signed(cv(1, "39.5", NOW)), now=NOW)
    with pytest.raises(ValueError, match="calorific value 395 MJ/m3 is outside the plausible band"):
        registry.receive(*signed(cv(2, "395", NOW + datetime.timedelta(days=1))), now=NOW)
    with pytest.raises(AuthenticationError, match="sequence 1 is not newer than 1: a replay"):
        registry.receive(*signed(cv(1, "39.5", NOW + datetime.timedelta(days=1))), now=NOW)
    with pytest.raises(AuthenticationError, match="does not verify"):
        registry.receive(*signed(cv(2, "40.0", NOW + datetime.timedelta(days=1)), key=OTHER_KEY), now=NOW)
    registry.receive(*signed(cv(2, "40.1", NOW + datetime.timedelta(days=14))), now=NOW)
    restarted = CalorificValueRegister(verifier, JsonStore(tmp_path / "cv.json"))
    assert [(v.mj_per_m3, v.effective) for v in restarted.history.values] == [
        (Decimal("39.5"), NOW), (Decimal("40.1"), NOW + datetime.timedelta(days=14))]
    assert restarted.history.at(NOW + datetime.timedelta(days=20)).mj_per_m3 == Decimal("40.1")


# --- Top-up codes --------------------------------------------------------------------------------

KEY = bytes(range(32))


def codes(tmp_path, meter_id="E12Z000123") -> TopUpCodes:
    return TopUpCodes(HmacSha256Verifier(KEY), JsonStore(tmp_path / "topups.json"), meter_id=meter_id)


def test_top_up_code_is_credited_once_even_across_a_restart(tmp_path):
    code = make_top_up_code(HmacSha256Verifier(KEY), "E12Z000123", 17, 2000)
    assert len(code.replace(" ", "")) == 26
    assert codes(tmp_path).redeem(code) == 2000
    with pytest.raises(AuthenticationError, match="top-up code number 17 was already used"):
        codes(tmp_path).redeem(code)                   # a new process, the same store
    assert codes(tmp_path).redeem(make_top_up_code(HmacSha256Verifier(KEY), "E12Z000123", 3, 500)) == 500


def test_top_up_code_tag_matches_hmac_sha256_computed_independently(tmp_path):
    import hashlib
    import hmac
    message = b"refmeter top-up|E12Z000123|17|2000"
    tag = int.from_bytes(hmac.new(KEY, message, hashlib.sha256).digest()[:5], "big")
    assert make_top_up_code(HmacSha256Verifier(KEY), "E12Z000123", 17, 2000).replace(" ", "") == \
        f"{17:06}{2000:07}{tag:013}"


@pytest.mark.parametrize("mangle, error, message", [
    (lambda code: code[:-1] + str((int(code[-1]) + 1) % 10), AuthenticationError, "check digits are wrong"),
    (lambda code: code.replace(" ", "")[:6] + "0009999" + code.replace(" ", "")[13:], AuthenticationError,
     "check digits are wrong"),                         # the amount changed
    (lambda code: code[:-2], ValueError, "a top-up code is 26 digits; this has 24"),
    (lambda code: code[:-1] + "x", ValueError, "and other characters"),
])
def test_bad_top_up_code_is_refused_and_spends_nothing(tmp_path, mangle, error, message):
    code = make_top_up_code(HmacSha256Verifier(KEY), "E12Z000123", 5, 1000)
    with pytest.raises(error, match=message):
        codes(tmp_path).redeem(mangle(code))
    assert not (tmp_path / "topups.json").exists()
    assert codes(tmp_path).redeem(code) == 1000


def test_code_for_another_meter_is_refused(tmp_path):
    code = make_top_up_code(HmacSha256Verifier(KEY), "E12Z000999", 5, 1000)
    with pytest.raises(AuthenticationError, match="check digits are wrong"):
        codes(tmp_path).redeem(code)


def test_code_is_not_credited_unless_its_use_is_on_disk(tmp_path, monkeypatch):
    code = make_top_up_code(HmacSha256Verifier(KEY), "E12Z000123", 8, 1000)
    def power_cut(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="disk full"):
        codes(tmp_path).redeem(code)
    assert list(tmp_path.iterdir()) == []               # no torn file, no temporary left
    monkeypatch.undo()
    assert codes(tmp_path).redeem(code) == 1000


def test_store_replaces_its_document_whole(tmp_path):
    store = JsonStore(tmp_path / "state.json")
    assert store.load({"spent": []}) == {"spent": []}
    store.save({"spent": [1]})
    store.save({"spent": [1, 2]})
    assert store.load(None) == {"spent": [1, 2]}
    assert [path.name for path in tmp_path.iterdir()] == ["state.json"]


def test_verifiers_refuse_weak_keys():
    with pytest.raises(ValueError, match="an HMAC key of 8 bytes is too short"):
        HmacSha256Verifier(bytes(8))
    with pytest.raises(ValueError, match="must be on P-256, not secp384r1"):
        EcdsaP256Verifier(ec.generate_private_key(ec.SECP384R1()).public_key())
