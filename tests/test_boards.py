"""Board builds with the YoWASP tools, and programming through the board's tool."""

import json
import stat
import sys
from pathlib import Path

import pytest

from refmeter.boards import BOARDS
from refmeter.boards.build import BuildError, build
from refmeter.boards.program import ProgramError, find_programmer, program
from refmeter.soft.cli import main

BAUD = 115_200


#: The three-phase ECP5 build takes six minutes, a third of the default run's
#: budget: it is extended (and in docs/performance.md's table); the UP5K, where the
#: meter must keep fitting, is built in every run.
@pytest.mark.slow
@pytest.mark.parametrize("board", [pytest.param(board, marks=pytest.mark.extended)
                                   if board == "ulx3s" else board for board in sorted(BOARDS)])
def test_meter_builds_and_meets_timing(board, tmp_path, capsys):
    """`refmeter build --json` synthesises the meter for each board, which fits and
    meets its clock, and prints the report a script would read (one build per board:
    the UP5K build alone takes minutes)."""
    assert main(["build", "--board", board, "--build-dir", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    platform = BOARDS[board].platform()
    assert report["board"] == board and report["device"] == platform.device
    assert 0 < report["luts"] < report["luts_available"]
    assert 0 < report["flip_flops"]
    assert report["ram_blocks"] <= report["ram_blocks_available"]
    assert report["clock_mhz"] == pytest.approx(platform.default_clk_frequency / 1e6, abs=0.1)
    assert report["fmax_mhz"] >= report["clock_mhz"]
    bitstream = Path(report["bitstream"])
    assert bitstream.parent == tmp_path and bitstream.stat().st_size > 10_000


def test_missing_toolchain_is_a_clear_build_error(tmp_path, monkeypatch):
    """A tool that cannot run fails the build with the log's last lines."""
    monkeypatch.setenv("YOSYS", str(tmp_path / "no-such-yosys"))
    with pytest.raises(BuildError, match=r"failed \(exit \d+\); last lines of .*build.log"):
        build(BOARDS["icebreaker"], tmp_path / "out", baud=BAUD)


def _fake_programmer(directory: Path, name: str, exit_code: int, output: str) -> Path:
    """An executable standing in for a USB programmer: records its arguments."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"open({str(directory / 'arguments')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                    f"print({output!r})\nsys.exit({exit_code})\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_programmers(monkeypatch, tmp_path):
    """A PATH with no programmer on it, and no override variables."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for board in BOARDS.values():
        for programmer in board.programmers:
            monkeypatch.delenv(programmer.environment, raising=False)
    return empty


def test_no_programmer_says_what_to_install(no_programmers, tmp_path):
    """Without a programmer, the error names each tool and how to install it."""
    bitstream = tmp_path / "meter.bin"
    bitstream.write_bytes(b"\0" * 16)
    with pytest.raises(ProgramError, match="install iceprog .*fpga-icestorm.*openFPGALoader"):
        program(BOARDS["icebreaker"], bitstream)


def test_missing_bitstream_says_to_build_first(tmp_path):
    """Programming before building says which build command to run."""
    with pytest.raises(ProgramError, match="refmeter build --board ulx3s"):
        program(BOARDS["ulx3s"], tmp_path / "nothing.bit")


@pytest.mark.parametrize("flash, expected", [(False, "-b ulx3s {}"), (True, "-b ulx3s -f {}")])
def test_programmer_gets_the_bitstream(no_programmers, tmp_path, flash, expected):
    """The installed programmer is run on the bitstream, to SRAM or to flash."""
    _fake_programmer(no_programmers, "openFPGALoader", 0, "done")
    bitstream = tmp_path / "meter.bit"
    bitstream.write_bytes(b"\0" * 16)
    assert find_programmer(BOARDS["ulx3s"])[0].tool == "openFPGALoader"
    assert program(BOARDS["ulx3s"], bitstream, flash=flash) == "done"
    assert (no_programmers / "arguments").read_text() == expected.format(bitstream)


def test_board_not_connected_is_exit_4(no_programmers, tmp_path, capsys):
    """The programmer finding no board: exit 4, its message, and a hint to check USB."""
    _fake_programmer(no_programmers, "iceprog", 2, "Can't find iCE FTDI USB device")
    bitstream = tmp_path / "meter.bin"
    bitstream.write_bytes(b"\0" * 16)
    assert main(["program", "--board", "icebreaker", "--bitstream", str(bitstream)]) == 4
    err = capsys.readouterr().err
    assert "iceprog failed (exit 2)" in err and "connected by USB" in err
    assert "Can't find iCE FTDI USB device" in err
