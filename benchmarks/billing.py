"""Billing speed: half-hourly meter-year bills per second on one core, beside PySAM.

    python benchmarks/billing.py                    # about a minute
    python benchmarks/billing.py --meters 2000 --sam-meters 20

The tariff is tests/tariffs_data/sam_comparable.json: three time-of-use rates in two
seasons, three monthly blocks, a standing charge and export rates. Our engine bills
it twice: in UTC (the calendar SAM can model), and in Europe/London with the bank
holidays as special days (the full calendar: two clock changes, 17,520 periods in
days of 46, 48 and 50). Both calendars are resolved once, outside the timing, as in
any batch run; the bills are timed from the meters' interval energy (whole Wh in
float32, as a load profile gives them) to every line's exact integer amount.
Rates are given per CPU second of this (single-threaded) process, which a shared
machine's other jobs do not inflate, and per wall-clock second.
PySAM (``Utilityrate5``) bills the first ``--sam-meters`` meters of the UTC case,
and each of its bills is compared with ours per rate (energy charges less export
credit), worst difference printed. BLAS and OpenMP are held to one thread.

Figures go in docs/performance.md with the command that produced them.
"""

import os

# One core, honestly: numpy's BLAS would otherwise use every core for the products.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402  (after the thread limits, which numpy reads on import)
import copy  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from refmeter.soft.tariffs import bill_meters, resolve_calendar, tariff_from_dict  # noqa: E402
from refmeter.soft.tariffs.reference import sam_bill, sam_year_days  # noqa: E402

from run import _table  # noqa: E402

TARIFF = Path(__file__).parent.parent / "tests" / "tariffs_data" / "sam_comparable.json"
#: England and Wales bank holidays in 2029, billed as weekends.
BANK_HOLIDAYS_2029 = ("2029-01-01", "2029-03-30", "2029-04-02", "2029-05-07", "2029-05-28",
                      "2029-08-27", "2029-12-25", "2029-12-26")
PERIODS = 17520


def meter_years(meters: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(meters, 17520) whole Wh in float32, as a meter records them: import, or on a
    quarter of the periods export instead."""
    rng = np.random.default_rng(seed)
    exporting = rng.random((meters, PERIODS), dtype=np.float32) < 0.25
    import_wh = np.where(exporting, 0, np.rint(rng.gamma(1.5, 300, (meters, PERIODS)))).astype(np.float32)
    export_wh = np.where(exporting, rng.integers(0, 2000, (meters, PERIODS)), 0).astype(np.float32)
    return import_wh, export_wh


def _ours_per_second(tariff, import_wh, export_wh, batch: int, repeats: int) -> tuple[float, float]:
    """Bills per CPU second and per wall-clock second, each the best of ``repeats``."""
    first_day, last_day = sam_year_days()
    resolve_calendar(tariff, first_day, last_day)  # once per tariff and year, not timed
    best_cpu = best_wall = 0.0
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, len(import_wh), batch):
            bill_meters(tariff, import_wh[start:start + batch], export_wh[start:start + batch],
                        first_day=first_day, last_day=last_day)
        best_cpu = max(best_cpu, len(import_wh) / (time.process_time() - cpu))
        best_wall = max(best_wall, len(import_wh) / (time.perf_counter() - wall))
    return best_cpu, best_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=2000, help="meter-years to bill (default 2000)")
    parser.add_argument("--batch", type=int, default=250, help="meters per call (default 250)")
    parser.add_argument("--sam-meters", type=int, default=20, help="meter-years for PySAM (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is shown")
    args = parser.parse_args()

    data = json.loads(TARIFF.read_text())
    utc_tariff = tariff_from_dict(data)
    london = copy.deepcopy(data)
    london["zone"] = "Europe/London"
    london["special_days"] = [{"date": day, "profile": "weekend"} for day in BANK_HOLIDAYS_2029]
    london_tariff = tariff_from_dict(london)
    import_wh, export_wh = meter_years(args.meters)

    sam_cpu, sam_wall = time.process_time(), time.perf_counter()
    sam = [sam_bill(utc_tariff, import_wh[m] / 1000.0, export_wh[m] / 1000.0) for m in range(args.sam_meters)]
    sam_rate = (args.sam_meters / (time.process_time() - sam_cpu),
                args.sam_meters / (time.perf_counter() - sam_wall))
    first_day, last_day = sam_year_days()
    ours = bill_meters(utc_tariff, import_wh[:args.sam_meters], export_wh[:args.sam_meters],
                       first_day=first_day, last_day=last_day)
    worst = 0.0
    for meter, reference in enumerate(sam):
        lines = ours.bill(meter).lines
        for rate_index, rate in enumerate(utc_tariff.rates):
            net = sum(float(line.amount) for line in lines if line.rate == rate.name)
            worst = max(worst, abs(net - reference["net_by_rate"][rate_index]))

    utc_rate = _ours_per_second(utc_tariff, import_wh, export_wh, args.batch, args.repeats)
    london_rate = _ours_per_second(london_tariff, import_wh, export_wh, args.batch, args.repeats)
    rows = [("engine", "calendar", "meter-years", "bills/CPU s", "bills/wall s", "x PySAM (CPU)")]
    for engine, calendar, meters, (cpu, wall) in (
            ("PySAM Utilityrate5", "UTC 2029", args.sam_meters, sam_rate),
            ("refmeter bill_meters", "UTC 2029", args.meters, utc_rate),
            ("refmeter bill_meters", "Europe/London 2029 + bank holidays", args.meters, london_rate)):
        rows.append((engine, calendar, f"{meters:,}", f"{cpu:,.0f}", f"{wall:,.0f}",
                     f"{cpu / sam_rate[0]:,.0f}"))
    print(f"Half-hourly meter-year bills on one core ({PERIODS:,} periods, TOU x 3 rates, "
          f"3 monthly blocks, standing charge, export), batches of {args.batch}, "
          f"best of {args.repeats}, {datetime.date.today()}:")
    print(_table(rows))
    print(f"Agreement with PySAM over {args.sam_meters} meter-years: worst difference per rate "
          f"(energy charges less export credit) {worst:.4f} cents")


if __name__ == "__main__":
    main()
