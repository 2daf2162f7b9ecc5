"""Where the UP5K meter's logic cells go: LUT4s and flip-flops by source file, and
the flip-flops that take a logic cell of their own.

    python benchmarks/cells.py                      # the iCEBreaker meter as `refmeter build` makes it
    python benchmarks/cells.py --security           # the same with the security unit
    python benchmarks/cells.py --netlist DIR/refmeter.json   # a netlist already built

An iCE40 logic cell holds one LUT4 and one flip-flop, and nextpnr packs a
flip-flop with the LUT4 that feeds its D input only when that LUT4 drives nothing
else; any other flip-flop (loaded straight from another flip-flop, a RAM or a
shared LUT4) takes a cell alone. So the cells a design needs are about its LUT4s
plus these lone flip-flops (plus a few carry-only cells). The table counts both
from Yosys' netlist, by the source file Amaranth recorded for each cell; LUT4s
that Yosys' techmapping made carry no source of their own and are shown as
``(techmap)``. A design that does not fit is still synthesised and placed as far
as nextpnr goes: the cells it wanted are printed from nextpnr's log.
Figures go in docs/performance.md with the command that produced them.
"""

import argparse
import collections
import json
import re
import sys
import tempfile
from pathlib import Path

from refmeter.boards import BOARDS
from refmeter.boards.build import DESIGN_NAME, BuildError, build_elaboratable
from refmeter.boards.top import BoardTop

BAUD = 115_200


def build_meter(build_dir: Path, *, security: bool) -> str:
    """Build the iCEBreaker meter in ``build_dir``; return nextpnr's cell count line."""
    board = BOARDS["icebreaker"]
    top = BoardTop(baud=BAUD, resources=board.resources, phases=board.phases,
                   profile_capacity=board.profile_capacity, security=security)
    try:
        build_elaboratable(board, top, build_dir, progress=lambda line: print(line, file=sys.stderr))
    except BuildError as error:
        if not (build_dir / f"{DESIGN_NAME}.json").exists():
            raise
        print(f"(does not build: {str(error).splitlines()[-2].strip()})", file=sys.stderr)
    log = (build_dir / f"{DESIGN_NAME}.tim").read_text()
    (cells,) = re.findall(r"ICESTORM_LC:\s*(\d+/\s*\d+)", log)
    return f"nextpnr: {cells.replace(' ', '')} logic cells"


def cell_table(netlist: dict) -> str:
    """LUT4s, flip-flops and lone flip-flops per source file of the top module."""
    (top,) = [module for module in netlist["modules"].values()
              if module["attributes"].get("top")]
    cells = top["cells"]
    drivers: dict[int, str] = {}
    loads: collections.Counter[int] = collections.Counter()
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            for bit in bits:
                if cell["port_directions"].get(port) == "output":
                    drivers[bit] = cell["type"]
                else:
                    loads[bit] += 1

    def source(cell: dict) -> str:
        path = cell["attributes"].get("src", "").split("|")[0].split(":")[0]
        return "(techmap)" if "/share/" in path or not path else "/".join(path.split("/")[-2:])

    luts: collections.Counter[str] = collections.Counter()
    flip_flops: collections.Counter[str] = collections.Counter()
    lone: collections.Counter[str] = collections.Counter()
    for cell in cells.values():
        where = source(cell)
        if cell["type"] == "SB_LUT4":
            luts[where] += 1
        elif cell["type"].startswith("SB_DFF"):
            flip_flops[where] += 1
            (d,) = cell["connections"]["D"]
            if drivers.get(d) != "SB_LUT4" or loads[d] != 1:
                lone[where] += 1
    rows = [("source", "LUT4", "FFs", "lone FFs")]
    for where in sorted(luts.keys() | flip_flops.keys(), key=lambda w: -(luts[w] + lone[w])):
        rows.append((where, str(luts[where]), str(flip_flops[where]), str(lone[where])))
    rows.append(("total", str(sum(luts.values())), str(sum(flip_flops.values())),
                 str(sum(lone.values()))))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                               for column, (cell, width) in enumerate(zip(row, widths)))
                     for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netlist", type=Path, help="a Yosys JSON netlist to read instead")
    parser.add_argument("--security", action="store_true", help="build with the security unit")
    parser.add_argument("--build-dir", type=Path, help="where to build (default: a temporary one)")
    args = parser.parse_args()
    if args.netlist:
        print(cell_table(json.loads(args.netlist.read_text())))
        return
    with tempfile.TemporaryDirectory() as scratch:
        build_dir = args.build_dir or Path(scratch)
        summary = build_meter(build_dir, security=args.security)
        netlist = json.loads((build_dir / f"{DESIGN_NAME}.json").read_text())
    unit = "with" if args.security else "without"
    print(f"The iCEBreaker meter {unit} the security unit; {summary}:")
    print(cell_table(netlist))


if __name__ == "__main__":
    main()
