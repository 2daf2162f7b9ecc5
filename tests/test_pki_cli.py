"""`refmeter pki` and `refmeter firmware` from a shell's point of view: files,
permissions, words, exit codes."""

import stat

import pytest

from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.soft.cli import main
from refmeter.soft.device import format_eui64
from refmeter.soft.pki.demo import DemoPki
from refmeter.soft.pki.roles import Role, Usage

from conftest import require_simulator, served_simulation


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli") / "demo-pki"
    assert main(["pki", "init", str(directory)]) == 0
    return directory


def test_init_writes_a_complete_pki_with_private_keys_for_their_owner_only(pki_dir, capsys):
    pki = DemoPki.load(pki_dir)
    assert set(pki.parties) == {(role, usage) for role in set(Role) - {Role.ROOT}
                                for usage in (Usage.SIGNING, Usage.KEY_AGREEMENT)} \
        - {(Role.RECOVERY, Usage.KEY_AGREEMENT)}
    assert pki.parties[Role.METER, Usage.SIGNING].info.identity == DEMO_METER_ID
    keys = [*pki_dir.rglob("*.key.pem"), *pki_dir.rglob("private-key.pem")]
    assert len(keys) == 1 + 4 + 11   # the root, the role CAs, every end entity
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in keys)
    assert main(["pki", "init", str(pki_dir)]) == 2
    assert "never written over" in capsys.readouterr().err


def test_show_explains_a_chain_and_refuses_a_stranger(pki_dir, tmp_path, capsys):
    assert main(["pki", "show", str(pki_dir / "supplier" / "signing.pem"), "--pki",
                 str(pki_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("supplier 02-52-45-46-ff-00-00-03's signing certificate")
    assert out[1].strip().startswith("issued by the supplier CA")
    assert out[2].strip().startswith("issued by the root CA") and out[3].startswith("valid now")
    assert main(["pki", "init", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    assert main(["pki", "show", str(tmp_path / "other" / "meter" / "signing.pem"), "--pki",
                 str(pki_dir)]) == 1
    assert "untrusted" in capsys.readouterr().err
    assert main(["pki", "show", str(pki_dir / "meter" / "signing.pem")]) == 2


def test_firmware_sign_verify_activate_and_refusals(pki_dir, tmp_path, capsys):
    raw = tmp_path / "meter.bit"
    raw.write_bytes(bytes(range(256)) * 4)
    signed = tmp_path / "meter.img"
    assert main(["firmware", "sign", str(raw), "--version", "7", "--pki", str(pki_dir),
                 "-o", str(signed)]) == 0
    assert main(["firmware", "verify", str(signed), "--pki", str(pki_dir)]) == 0
    assert "bitstream version 7, 1024 bytes" in capsys.readouterr().out
    slots = str(tmp_path / "slots")
    assert main(["firmware", "activate", str(signed), "--pki", str(pki_dir), "--slots", slots,
                 "--self-test", "sh -c 'cmp -s \"$REFMETER_IMAGE\" " + str(raw) + "'"]) == 0
    assert "slot B now runs" in capsys.readouterr().out
    assert main(["firmware", "sign", str(raw), "--version", "8", "--pki", str(pki_dir),
                 "-o", str(signed)]) == 0
    assert main(["firmware", "activate", str(signed), "--pki", str(pki_dir), "--slots", slots,
                 "--self-test", "false"]) == 1
    assert "slot B (the previous image) restored" in capsys.readouterr().out
    flipped = bytearray(signed.read_bytes())
    flipped[500] ^= 0x10
    signed.write_bytes(flipped)
    assert main(["firmware", "verify", str(signed), "--pki", str(pki_dir)]) == 1
    assert "bad digest" in capsys.readouterr().err
    assert main(["firmware", "sign", str(raw), "--pki", str(pki_dir)]) == 2
    assert "sign needs --version" in capsys.readouterr().err


@pytest.mark.extended   # a second simulated meter, over TCP: 5 s on an idle machine, a minute on a busy one
def test_commission_provisions_agreed_keys_that_the_existing_commands_use(pki_dir, tmp_path):
    """The API path is in the default run (tests/test_pki_meter.py); this is the command's."""
    require_simulator("verilator")
    state = tmp_path / "state"
    with served_simulation("--simulator", "verilator", "--seal-open") as (_, url):
        assert main(["--url", url, "pki", "commission", str(pki_dir), "--state", str(state)]) == 0
        key_file = state / f"keys-{format_eui64(DEMO_METER_ID)}.json"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert main(["--url", url, "set-clock", "--keys", str(key_file), "--authority",
                     "supplier"]) == 0
        assert main(["--url", url, "seal", "--snapshot", "--keys", str(key_file)]) == 0
