"""Loading a bitstream onto a board with whichever programmer is installed."""

import os
import shutil
import subprocess
from pathlib import Path

from . import Board, Programmer

__all__ = ["ProgramError", "find_programmer", "program"]


class ProgramError(Exception):
    """No programmer, no bitstream, or the programmer failed (often: no board)."""


def find_programmer(board: Board) -> tuple[Programmer, str]:
    """The first of the board's programmers that is installed, and its path.

    A programmer's environment variable (``ICEPROG``, ``OPENFPGALOADER`` ...) names
    the executable to use instead of looking it up on ``PATH``.
    """
    for programmer in board.programmers:
        path = shutil.which(os.environ.get(programmer.environment, programmer.tool))
        if path is not None:
            return programmer, path
    options = "; or ".join(f"{programmer.tool} ({programmer.install_hint})"
                           for programmer in board.programmers)
    raise ProgramError(f"no programmer for {board.title} found; install {options}")


def program(board: Board, bitstream: Path, *, flash: bool = False) -> str:
    """Load ``bitstream`` into the board's FPGA, or with ``flash`` write it to the
    configuration flash so it survives power-off; return the tool's output."""
    if not bitstream.is_file():
        raise ProgramError(f"no bitstream at {bitstream}; run `refmeter build --board {board.name}` first")
    programmer, path = find_programmer(board)
    arguments = programmer.flash_arguments if flash else programmer.sram_arguments
    command = [path, *(argument.format(bitstream=bitstream) for argument in arguments)]
    result = subprocess.run(command, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise ProgramError(f"{programmer.tool} failed (exit {result.returncode}); is the "
                           f"{board.title} connected by USB?\n{output[-2000:]}")
    return output
