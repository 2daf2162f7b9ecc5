"""The billing engine against NREL's PySAM (``PySAM.Utilityrate5``), an independent rate
engine, on the same tariffs and half-hourly data: every energy line and the export
credit agree to the cent.

SAM's year is 365 days from a Monday with no clock changes, so the comparison is on
2029 in UTC (clock changes are the golden bills' job, tests/test_tariffs_billing.py).
SAM's charge table nets each period's export credit into its import charges, so the
comparison is per rate: our import lines plus our export line against SAM's period
total, energy per rate and tier to the Wh, and the export credit in total. Its fixed
charge is monthly where ours is daily, so the standing charge is left out.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from refmeter.soft.tariffs import bill_meters, tariff_from_dict
from refmeter.soft.tariffs.reference import sam_bill, sam_year_days

TARIFF = json.loads((Path(__file__).parent / "tariffs_data" / "sam_comparable.json").read_text())
PERIODS = 17520
CENT = 1.0


def meter_year(seed: int, export_share: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Half-hourly kWh in whole Wh, as a meter records them: import, or (on a random
    share of periods) export instead."""
    rng = np.random.default_rng(seed)
    exporting = rng.random(PERIODS) < export_share
    import_kwh = np.where(exporting, 0.0, np.round(rng.gamma(1.5, 0.3, PERIODS), 3))
    export_kwh = np.where(exporting, np.round(rng.uniform(0, 2, PERIODS), 3), 0.0)
    return import_kwh, export_kwh


def compare(data: dict, import_kwh: np.ndarray, export_kwh: np.ndarray) -> None:
    tariff = tariff_from_dict(data)
    first_day, last_day = sam_year_days()
    ours = bill_meters(tariff, np.rint(import_kwh[None] * 1000), np.rint(export_kwh[None] * 1000),
                       first_day=first_day, last_day=last_day).bill(0)
    sam = sam_bill(tariff, import_kwh, export_kwh)
    tiered = tariff.blocks is not None
    for rate_index, rate in enumerate(tariff.rates):
        for tier in range(tariff.tiers):
            line = next(line for line in ours.lines if line.kind == "import" and line.rate == rate.name
                        and line.tier == (tier + 1 if tiered else None))
            assert float(line.quantity) == pytest.approx(sam["import_kwh"][rate_index, tier], abs=0.0005)
        net = sum(float(line.amount) for line in ours.lines if line.rate == rate.name)
        assert net == pytest.approx(sam["net_by_rate"][rate_index], abs=CENT / 2), rate.name
    export = sum(float(line.amount) for line in ours.lines if line.kind == "export")
    assert -export == pytest.approx(sam["export"], abs=CENT / 2)


def test_time_of_use_with_export_agrees_with_pysam():
    data = copy.deepcopy(TARIFF)
    del data["blocks"]
    for rate in data["rates"].values():
        rate["import"] = rate["import"][:1]
    compare(data, *meter_year(1))


def test_blocks_alone_agree_with_pysam():
    data = copy.deepcopy(TARIFF)
    data["rates"] = {"all": {"import": ["12", "15.5", "21"], "export": "5.5"}}
    data["day_profiles"] = {"all": [{"from": "00:00", "to": "00:00", "rate": "all"}]}
    data["seasons"] = [{"name": "all year", "week": {day: "all" for day in
                                                     ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}]
    compare(data, *meter_year(2))


def test_time_of_use_with_blocks_agrees_with_pysam():
    compare(TARIFF, *meter_year(3))


@pytest.mark.extended
@pytest.mark.parametrize("seed", range(40))
def test_random_meters_agree_with_pysam(seed):
    rng = np.random.default_rng(1000 + seed)
    data = copy.deepcopy(TARIFF)
    data["blocks"]["thresholds_kwh"] = sorted(rng.choice(np.arange(10, 600, 10), 2, replace=False).tolist())
    for rate in data["rates"].values():
        rate["import"] = [str(round(rng.uniform(1, 60), 4)) for _ in range(3)]
        rate["export"] = str(round(rng.uniform(0, 30), 4))
    compare(data, *meter_year(seed, export_share=rng.uniform(0, 0.6)))
