"""``refmeter bill``: both CSV forms, text and JSON, and refusals with exit code 2."""

import json
import shutil
from pathlib import Path

import pytest

from refmeter.soft.cli import main
from refmeter.soft.profile import CSV_COLUMNS

DATA = Path(__file__).parent / "tariffs_data"


@pytest.fixture
def tariff(tmp_path) -> Path:
    return Path(shutil.copy(DATA / "economy7.json", tmp_path / "economy7.json"))


def test_bill_from_a_simple_csv_on_the_spring_clock_change(tariff, tmp_path, capsys):
    # 00:30 UTC (night), 01:00 UTC = 02:00 BST (night), 07:00 UTC = 08:00 BST (day):
    # 1 + 2 kWh at 10 p + 4 kWh at 30 p - 1 kWh exported at 15 p + 50 p standing
    # = 30 + 120 - 15 + 50 = 185 p.
    usage = tmp_path / "usage.csv"
    usage.write_text("timestamp,kwh,export_kwh\n2026-03-29T00:30:00Z,1,0\n"
                     "2026-03-29T01:00:00+00:00,2,0\n2026-03-29T08:00:00+01:00,4,1\n")
    assert main(["bill", "--tariff", str(tariff), "--profile", str(usage), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["first_day"], result["last_day"], result["total"], result["payable"]) == \
        ("2026-03-29", "2026-03-29", "185.0000000", "185")
    assert main(["bill", "--tariff", str(tariff), "--profile", str(usage)]) == 0
    text = capsys.readouterr().out
    assert "import, night" in text and "payable" in text and "185 p" in text


def test_bill_from_refmeter_profile_csv(tariff, tmp_path, capsys):
    profile = tmp_path / "profile.csv"
    profile.write_text(",".join(CSV_COLUMNS) + "\n"
                       "7,,2026-01-05T12:30:00+00:00,1500,0,0,0,0\n"
                       "8,2026-01-05T12:30:00+00:00,2026-01-05T13:00:00+00:00,500,250,0,0,0\n")
    # 2 kWh at 30 p - 0.25 kWh at 15 p + 50 p = 106.25 p.
    assert main(["bill", "--tariff", str(tariff), "--profile", str(profile), "--json",
                 "--from", "2026-01-05", "--to", "2026-01-05"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == "106.2500000"


@pytest.mark.parametrize("csv_text, message", [
    ("when,energy\n2026-01-05T12:00:00Z,1\n", "header 'when,energy' is neither"),
    ("timestamp,kwh\n2026-01-05T12:00:00,1\n", "usage.csv line 2: '2026-01-05T12:00:00' has no UTC offset"),
    ("timestamp,kwh\n2026-01-05T12:00:00Z,lots\n", "usage.csv line 2: 'lots' is not a number"),
    ("timestamp,kwh\n2026-01-05T12:15:00Z,1\n", "is not the start of a half-hour settlement period"),
])
def test_bad_profile_is_refused_with_exit_code_2(tariff, tmp_path, capsys, csv_text, message):
    usage = tmp_path / "usage.csv"
    usage.write_text(csv_text)
    assert main(["bill", "--tariff", str(tariff), "--profile", str(usage)]) == 2
    assert message in capsys.readouterr().err


def test_bad_tariff_is_refused_with_exit_code_2(tmp_path, capsys):
    usage = tmp_path / "usage.csv"
    usage.write_text("timestamp,kwh\n2026-01-05T12:00:00Z,1\n")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "no rates"}))
    assert main(["bill", "--tariff", str(broken), "--profile", str(usage)]) == 2
    assert "the tariff has no 'rates'" in capsys.readouterr().err
    assert main(["bill", "--tariff", str(tmp_path / "missing.json"), "--profile", str(usage)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bill_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bill", "--help"])
    assert exit_.value.code == 0
    _, examples = capsys.readouterr().out.split("examples:", 1)
    assert "refmeter bill --tariff" in examples
