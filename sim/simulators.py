"""Simulated meters behind the host's :class:`~refmeter.soft.transport.Transport`.

Two engines run the same :class:`~refmeter.sim.harness.SimHarness`:

* ``amaranth``: Amaranth's Python simulator in a background thread; needs nothing
  but Python (about 30-45 thousand cycles per second);
* ``verilator``: the harness compiled by Verilator with a small C++ loop
  (``harness.cpp``) in a child process, bridged over pipes; needs a C++ compiler,
  and is two orders of magnitude faster.

Both run freely, bridging bytes as they come and handing the ADC model a sample
set of the simulated :class:`~refmeter.sim.analog.Load` every sample period: the
meter's clock is simulated time, slower than wall-clock time.
"""

import os
import subprocess
import threading
import time
from typing import Callable

import numpy as np
from amaranth.sim import Simulator

from refmeter.gateware.adc.ads131m04 import CHANNELS
from refmeter.gateware.interlock import InterlockParameters
from refmeter.gateware.meter import (CHANNELS_PER_PHASE, DEMO_METER_ID, Meter, adc_devices,
                                     has_neutral, source_revision)
from refmeter.soft.errors import LinkError
from refmeter.soft.transport import Transport

from .analog import FrontEnd, Load
from .harness import PANEL_INPUTS, SIM_BAUD, SIM_CLK_FREQ, SimHarness
from . import verilator

__all__ = ["SIMULATORS", "DEFAULT_LOAD", "SIM_INTERLOCK", "Panel", "default_simulator", "simulated_meter",
           "open_simulation", "AmaranthSimulation", "VerilatorSimulation"]

SIMULATORS = ("amaranth", "verilator")


def default_simulator() -> str:
    """``verilator`` when this machine can compile its model, else ``amaranth``."""
    return "verilator" if verilator.missing_tools() == [] else "amaranth"


#: Simulated meters run the interlock's clock a thousand times fast: its second is a
#: millisecond of meter time, so that a 15-minute cooldown passes in a few seconds
#: of a Verilator run. Relay pulses, debouncing and the demand keep real time.
SIM_INTERLOCK = InterlockParameters(ms_per_second=1)


def simulated_meter(*, meter_id: int = DEMO_METER_ID, phases: int = 1,
                    security: bool = True) -> Meter:
    """The meter as every simulation runs it, its interlock on :data:`SIM_INTERLOCK`
    time (``security=False``: as on a board without room for the security unit)."""
    return Meter(clk_freq=SIM_CLK_FREQ, baud=SIM_BAUD, meter_id=meter_id,
                 build_hash=source_revision(), time_preset=True, phases=phases,
                 security=security, interlock_parameters=SIM_INTERLOCK)


#: What a simulated meter measures unless told otherwise: 230 V, 5 A at PF 1.
DEFAULT_LOAD = Load(230.0, 5.0)


class SampleSource:
    """ADC codes of one load per phase seen through ``front_end``, one block after
    another, on the channels the meter reads them from (phase k's voltage on channel
    2k, its current on 2k + 1, a three-phase meter's neutral current next, unused
    channels zero), with a fixed seed so runs repeat."""

    BLOCK = 4096

    def __init__(self, loads: tuple[Load, ...], front_end: FrontEnd = FrontEnd(), seed: int = 0):
        self.loads, self.front_end = loads, front_end
        self._neutral = has_neutral(len(loads))
        self._channels = CHANNELS * adc_devices(len(loads))
        self._rng = np.random.default_rng(seed)
        self._time_s = 0.0

    @property
    def sample_rate_hz(self) -> float:
        return self.front_end.sample_rate_hz

    def next_block(self) -> np.ndarray:
        """The next :attr:`BLOCK` sample sets, shape (BLOCK, channels), int32."""
        voltages, currents, neutral = self.front_end.sample_phases(
            self.loads, self.BLOCK, self._rng, self._time_s, neutral=self._neutral)
        self._time_s += self.BLOCK / self.sample_rate_hz
        block = np.zeros((self.BLOCK, self._channels), dtype=np.int32)
        for index, (voltage, current) in enumerate(zip(voltages, currents)):
            block[:, CHANNELS_PER_PHASE * index] = voltage
            block[:, CHANNELS_PER_PHASE * index + 1] = current
        if neutral is not None:
            block[:, CHANNELS_PER_PHASE * len(self.loads)] = neutral
        return block


class Panel:
    """What a person does at a simulated meter: the reconnect button, the auxiliary
    override button and the isolation switch (the harness's ``panel`` port, a bit per
    input of :data:`~.harness.PANEL_INPUTS`).

    The simulation takes the panel's state with each block of sample sets it
    generates, ahead of the meter, so a change reaches the meter within a block or
    two of meter time; a press therefore lasts a set time of meter time, so that no
    press falls between two blocks.
    """

    BUTTONS = ("button", "aux_override")
    SWITCHES = ("isolate",)

    def __init__(self, sample_rate_hz: float):
        self._sample_rate_hz = sample_rate_hz
        self._lock = threading.Lock()
        self._held = 0                           # switches' bits
        self._presses: list[list[int]] = []      # [bit, sample sets left]

    def _bit(self, name: str, kind: str, names: tuple[str, ...]) -> int:
        if name not in names:
            raise ValueError(f"the panel has no {kind} {name!r}: it has {', '.join(names)}")
        return 1 << PANEL_INPUTS.index(name)

    def press(self, name: str, *, seconds: float = 0.2) -> None:
        """Press button ``name`` for ``seconds`` of meter time."""
        bit = self._bit(name, "button", self.BUTTONS)
        with self._lock:
            self._presses.append([bit, max(1, round(seconds * self._sample_rate_hz))])

    def switch(self, name: str, on: bool) -> None:
        """Throw switch ``name`` (``isolate``) on or back."""
        bit = self._bit(name, "switch", self.SWITCHES)
        with self._lock:
            self._held = self._held | bit if on else self._held & ~bit

    def next_block(self, samples: int) -> np.ndarray:
        """The inputs' bits for the next ``samples`` sample sets, int32."""
        bits = np.empty(samples, dtype=np.int32)
        with self._lock:
            bits[:] = self._held
            for press in self._presses:
                bits[:press[1]] |= press[0]
                press[1] -= min(press[1], samples)
            self._presses = [press for press in self._presses if press[1]]
        return bits


def open_simulation(simulator: str, meter: Meter | None = None, *,
                    load: "Load | tuple[Load, ...]" = DEFAULT_LOAD,
                    front_end: FrontEnd = FrontEnd(), seal_open: bool = False,
                    progress: Callable[[str], None] = lambda message: None) -> Transport:
    """Start a simulated meter measuring ``load`` through ``front_end`` (ideal by
    default; :data:`~refmeter.sim.analog.AS_BUILT` before calibration) and return
    the transport to its UART. ``load`` is one load for every phase (a balanced
    supply) or a load per phase."""
    meter = simulated_meter() if meter is None else meter
    loads = (load,) * meter.phases if isinstance(load, Load) else tuple(load)
    if len(loads) != meter.phases:
        raise ValueError(f"A {meter.phases}-phase meter needs {meter.phases} loads, not {len(loads)}")
    source = SampleSource(loads, front_end)
    if simulator == "amaranth":
        return AmaranthSimulation(meter, source, seal_open=seal_open)
    if simulator == "verilator":
        return VerilatorSimulation(meter, source, seal_open=seal_open, progress=progress)
    raise ValueError(f"Unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")


class _ByteQueue:
    """Bytes from the meter, handed from the simulation's thread to the host's."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._changed = threading.Condition()
        self.failure: str | None = None

    def put(self, data: bytes) -> None:
        with self._changed:
            self._data += data
            self._changed.notify_all()

    def fail(self, reason: str) -> None:
        with self._changed:
            self.failure = reason
            self._changed.notify_all()

    def get(self, size: int, timeout: float, url: str) -> bytes:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._data) < size and self.failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            if self.failure is not None and not self._data:
                raise LinkError(f"simulated meter {url} stopped: {self.failure}")
            data = bytes(self._data[:size])
            del self._data[:size]
            return data

    def clear(self) -> None:
        with self._changed:
            self._data.clear()


class AmaranthSimulation(Transport):
    """The meter in Amaranth's simulator, running in a background thread; a person
    acts on it through :attr:`panel`."""

    #: Cycles between looks at the harness's FIFOs: fewer than a byte takes (80).
    POLL_CYCLES = 32

    def __init__(self, meter: Meter, source: SampleSource, *, seal_open: bool = False):
        self.url = "sim:amaranth"
        self._harness = SimHarness(meter)
        self._source = source
        self.panel = Panel(source.sample_rate_hz)
        self._seal_open = seal_open
        self._cycles_per_sample = meter.clk_freq / source.sample_rate_hz
        self._to_meter = bytearray()
        self._to_meter_lock = threading.Lock()
        self._from_meter = _ByteQueue()
        self._stopping = threading.Event()

        self._simulator = Simulator(self._harness)
        self._simulator.add_clock(1 / meter.clk_freq)
        self._simulator.add_testbench(self._bridge)
        self._thread = threading.Thread(target=self._run, name="amaranth-meter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._simulator.run()
        except Exception as error:  # surfaces in the host thread as a LinkError
            self._from_meter.fail(f"{type(error).__name__}: {error}")
        else:
            self._from_meter.fail("closed")

    async def _bridge(self, ctx) -> None:
        harness = self._harness
        ctx.set(harness.seal_open, self._seal_open)
        ctx.set(harness.utc_preset.payload, int(time.time()))
        ctx.set(harness.utc_preset.valid, 1)
        await ctx.tick()
        ctx.set(harness.utc_preset.valid, 0)

        outgoing = bytearray()
        cycle, next_sample, samples = 0, 0.0, iter(())
        while not self._stopping.is_set():
            # The ADC model takes a sample set whenever one is due (it is always ready).
            if cycle >= next_sample:
                sample = next(samples, None)
                if sample is None:
                    block = self._source.next_block()
                    samples = zip(block.tolist(), self.panel.next_block(len(block)).tolist())
                    sample = next(samples)
                codes, panel = sample
                ctx.set(harness.panel, panel)
                ctx.set(harness.adc_codes.payload, codes)
                ctx.set(harness.adc_codes.valid, 1)
                await ctx.tick()
                ctx.set(harness.adc_codes.valid, 0)
                cycle += 1
                next_sample += self._cycles_per_sample
            with self._to_meter_lock:
                outgoing += self._to_meter
                self._to_meter.clear()
            # Fill the harness's outbox, one byte a cycle, until it is full.
            while outgoing:
                ctx.set(harness.to_meter.payload, outgoing[0])
                ctx.set(harness.to_meter.valid, 1)
                _, _, taken = await ctx.tick().sample(harness.to_meter.ready)
                cycle += 1
                if not taken:
                    break
                del outgoing[0]
            ctx.set(harness.to_meter.valid, 0)
            # Empty its inbox.
            ctx.set(harness.from_meter.ready, 1)
            received = bytearray()
            while True:
                _, _, valid, byte = await ctx.tick().sample(harness.from_meter.valid,
                                                            harness.from_meter.payload)
                cycle += 1
                if not valid:
                    break
                received.append(byte)
            ctx.set(harness.from_meter.ready, 0)
            if received:
                self._from_meter.put(bytes(received))
            await ctx.tick().repeat(self.POLL_CYCLES)
            cycle += self.POLL_CYCLES

    def write(self, data: bytes) -> None:
        if not self._thread.is_alive():
            raise LinkError(f"simulated meter {self.url} is not running")
        with self._to_meter_lock:
            self._to_meter += data

    def read(self, size: int, timeout: float) -> bytes:
        return self._from_meter.get(size, timeout, self.url)

    def discard_input(self) -> None:
        self._from_meter.clear()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()


class VerilatorSimulation(Transport):
    """The meter compiled by Verilator, in a child process bridged over pipes; a
    person acts on it through :attr:`panel`."""

    def __init__(self, meter: Meter, source: SampleSource, *, seal_open: bool = False,
                 progress: Callable[[str], None] = lambda message: None):
        self.url = "sim:verilator"
        executable = verilator.build_harness(SimHarness(meter), progress=progress)
        # Sample sets travel on a pipe of their own, read by the model when due.
        samples_read, self._samples_write = os.pipe()
        self._process = subprocess.Popen(
            [str(executable), repr(meter.clk_freq / source.sample_rate_hz), str(samples_read),
             str(int(seal_open))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(samples_read,),
            start_new_session=True)  # Ctrl-C is the parent's to handle
        os.close(samples_read)
        self._source = source
        self.panel = Panel(source.sample_rate_hz)
        self._from_meter = _ByteQueue()
        self._reader = threading.Thread(target=self._pump, name="verilator-meter", daemon=True)
        self._reader.start()
        self._feeder = threading.Thread(target=self._feed, name="verilator-adc", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        """Write sample sets, each with the panel's inputs, ahead of the model; the
        pipe's buffer paces this thread."""
        try:
            while True:
                codes = self._source.next_block()
                block = np.column_stack([codes, self.panel.next_block(len(codes))])
                data = block.astype("<i4").tobytes()
                while data:
                    data = data[os.write(self._samples_write, data):]
        except OSError:  # the model ended, or close() closed the pipe
            pass

    def _pump(self) -> None:
        assert self._process.stdout is not None
        while data := os.read(self._process.stdout.fileno(), 4096):
            self._from_meter.put(data)
        code = self._process.wait()
        assert self._process.stderr is not None
        message = self._process.stderr.read().decode(errors="replace").strip()
        self._from_meter.fail(f"exit code {code}" + (f": {message}" if message else ""))

    def write(self, data: bytes) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise LinkError(f"simulated meter {self.url} is not running") from error

    def read(self, size: int, timeout: float) -> bytes:
        return self._from_meter.get(size, timeout, self.url)

    def discard_input(self) -> None:
        self._from_meter.clear()

    def close(self) -> None:
        """Close the model's input, which ends its loop; kill it if it lingers."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._samples_write)  # ends the feeder's blocked write
        self._feeder.join()
        self._reader.join()
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()
