"""refmeter benchmarks: simulation speed and synthesis results, printed as tables.

    python benchmarks/run.py                 # everything (about two minutes)
    python benchmarks/run.py simulation      # one group

Figures go in docs/performance.md with the command that produced them.
"""

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from refmeter.boards import BOARDS
from refmeter.boards.build import build, report_table
from refmeter.sim import verilator
from refmeter.sim.harness import SIM_CLK_FREQ
from refmeter.sim.server import CoSimServer
from refmeter.sim.simulators import SIMULATORS, open_simulation
from refmeter.soft.device import Meter
from refmeter.soft.transport import SerialTransport


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(width) if index else cell.ljust(width)
                               for index, (cell, width) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)


def _meter_ms(meter: Meter) -> int:
    time_value = meter.read("utc_time")
    return time_value["seconds"] * 1000 + time_value["millisecond"]


def _cycles_per_second(meter: Meter, seconds: float) -> float:
    """Free-running speed, measured by the meter's own clock over ``seconds`` of wall time."""
    start_wall, start_ms = time.monotonic(), _meter_ms(meter)
    time.sleep(seconds)
    end_ms, end_wall = _meter_ms(meter), time.monotonic()
    return (end_ms - start_ms) / 1000 * SIM_CLK_FREQ / (end_wall - start_wall)


def _reads_per_second(meter: Meter, count: int) -> float:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        meter.read("scratch")
        timings.append(time.perf_counter() - started)
    return 1 / statistics.median(timings)


def simulation(seconds: float) -> str:
    rows = [("simulator", "kcycles/s", "x real time", "reads/s in-process", "reads/s socket://")]
    for simulator in SIMULATORS:
        if simulator == "verilator" and verilator.missing_tools():
            continue
        reads = 5 if simulator == "amaranth" else 200
        with Meter(open_simulation(simulator), timeout=10) as meter:
            meter.read("meter_id")  # the model is built and running
            speed = _cycles_per_second(meter, seconds)
            in_process = _reads_per_second(meter, reads)
        with open_simulation(simulator) as simulated:
            server = CoSimServer(simulated, port=0)
            serving = threading.Thread(target=server.serve_forever)
            serving.start()
            try:
                with Meter(SerialTransport(server.url), timeout=10) as meter:
                    over_socket = _reads_per_second(meter, reads)
            finally:
                server.stop()
                serving.join()
                server.close()
        rows.append((simulator, f"{speed / 1000:,.0f}", f"{speed / SIM_CLK_FREQ:.4f}",
                     f"{in_process:,.1f}", f"{over_socket:,.1f}"))
    return (f"Simulation of the meter top (SimHarness, {SIM_CLK_FREQ / 1e6:g} MHz clock, "
            f"UART at 8 cycles/bit), {seconds:g} s per speed measurement:\n" + _table(rows))


def synthesis() -> str:
    with tempfile.TemporaryDirectory() as build_root:
        reports = [build(board, Path(build_root) / board.name, baud=115_200)
                   for board in BOARDS.values()]
    return "Synthesis of the meter top (115200 baud host link):\n" + report_table(reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", metavar="{simulation,synthesis}",
                        help="which benchmarks (default: all)")
    parser.add_argument("--seconds", type=float, default=20,
                        help="wall time per simulation speed measurement (default 20)")
    args = parser.parse_args()
    groups = args.groups or ["simulation", "synthesis"]
    unknown = set(groups) - {"simulation", "synthesis"}
    if unknown:
        parser.error(f"unknown benchmark group {', '.join(sorted(unknown))}")
    if "simulation" in groups:
        print(simulation(args.seconds), end="\n\n", flush=True)
    if "synthesis" in groups:
        print(synthesis(), flush=True)


if __name__ == "__main__":
    main()
