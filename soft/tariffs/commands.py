"""The ``refmeter bill`` command (added to the CLI by :func:`add_commands`)."""

import argparse
import datetime
import json
from collections.abc import Callable

__all__ = ["add_commands"]


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the tariff commands through the CLI's ``command(name, run, summary, examples)``."""
    parser = command("bill", _cmd_bill, "bill interval energy on a tariff, in the customer's local time", """
        refmeter bill --tariff economy7.json --profile profile.csv
        refmeter bill --tariff tariff.toml --profile usage.csv --from 2026-03-01 --to 2026-03-31 --json
        refmeter --url /dev/ttyUSB1 profile --csv > profile.csv    (a meter's load profile, to bill)""")
    parser.add_argument("--tariff", required=True,
                        help="tariff file, JSON or TOML (schema: docs/tariffs.md)")
    parser.add_argument("--profile", required=True,
                        help="interval CSV: `refmeter profile --csv` output, or timestamp,kwh[,export_kwh]")
    parser.add_argument("--from", dest="first_day", type=datetime.date.fromisoformat,
                        help="first local day billed, YYYY-MM-DD (default: the first interval's)")
    parser.add_argument("--to", dest="last_day", type=datetime.date.fromisoformat,
                        help="last local day billed, inclusive (default: the last interval's)")
    parser.add_argument("--opening-block-kwh", type=float, default=0.0,
                        help="kWh already used in the block period current at the start "
                             "(the previous bill's closing figure; default 0)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _cmd_bill(args: argparse.Namespace) -> int:
    from .billing import bill  # numpy and numba only when a bill is made: the CLI starts fast
    from .intervals import read_interval_csv
    from .model import load_tariff

    try:
        tariff = load_tariff(args.tariff)
    except OSError as error:
        raise ValueError(f"cannot read {args.tariff}: {error.strerror}") from None
    starts, import_kwh, export_kwh = read_interval_csv(args.profile)
    result = bill(tariff, starts, import_kwh, export_kwh, first_day=args.first_day,
                  last_day=args.last_day, opening_block_kwh=args.opening_block_kwh)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.format())
    return 0
