"""The numba kernels of the bit-exact models follow the gateware's constants, cache or not.

numba freezes the globals a kernel reads into its compiled code, and its on-disk cache
is invalidated only by a change to the kernel's own source file (numba's "Notes on
Caching": changes to symbols defined in another file are not recognised). A kernel
that read ``spec.DC_SHIFT`` would therefore keep the old value after an edit of
``gateware/metrology/spec.py``, and the model would silently stop matching the RTL.

The test edits the constants the way a developer would between two runs: one process
compiles the models into a fresh cache directory; a second one, sharing that
directory, changes each constant (in ``spec`` or ``line``, before the models are
imported) and runs them; a third runs the same kernels as plain Python
(``NUMBA_DISABLE_JIT``), which reads every constant afresh. The second must agree
with the third for every change, and every change must matter.
"""

import json
import os
import subprocess
import sys

from refmeter.gateware.metrology import spec

#: Runs both models on fixed stimuli with each change of constants in turn (the first
#: is none) and prints one digest of what they published per change. The models are
#: reloaded after each change, as a new process would import them.
SCRIPT = r"""
import importlib, json, sys
import numpy as np
from refmeter.gateware.metrology import line, spec

CHANGES = json.loads(sys.argv[1])
rng = np.random.default_rng(1)
n = np.arange(20_000)
# A 50 Hz sine near full scale with noise and a DC offset, and a lagging current.
voltage = (np.round(7.5e6 * np.sin(2 * np.pi * 50 / 8000 * n) + 3e5)
           + rng.integers(-1000, 1000, n.size)).astype(np.int64)
current = (np.round(4e6 * np.sin(2 * np.pi * 50 / 8000 * (n - 20)) - 2e5)
           + rng.integers(-1000, 1000, n.size)).astype(np.int64)
digests = []
for change in CHANGES:
    saved = {}
    for name, value in change.items():
        module, attribute = name.split(".")
        module = {"spec": spec, "line": line}[module]
        saved[module, attribute] = getattr(module, attribute)
        setattr(module, attribute, tuple(value) if isinstance(value, list) else value)
    metrology = importlib.reload(importlib.import_module("refmeter.sim.metrology"))
    line_model = importlib.reload(importlib.import_module("refmeter.sim.line"))
    phase = metrology.PhaseModel(metrology.PhaseCalibration(
        energy_quantum=1 << 40, phase_coefficient=-17102, window_samples=100),
        fundamental_window_log2=9, nco_step=26843546)
    windows = phase.run(voltage, current)
    run = line_model.LineModel(declared=0).run(voltage)
    digests.append([windows.tolist(), phase.net_energy, phase.net_reactive_energy,
                    run.measurements.tolist(), run.half_cycles.tolist()])
    for (module, attribute), value in saved.items():
        setattr(module, attribute, value)
print(json.dumps(digests))
"""

#: One change per constant a kernel depends on, each to a value that changes what the
#: stimuli above produce.
CHANGES = [
    {},
    {"spec.DC_SHIFT": 10},
    {"spec.PHASE_COEFFICIENT_FRACTION": 16},
    {"spec.SAMPLE_MAX": (1 << 22) - 1, "spec.SAMPLE_MIN": -((1 << 22) - 1)},
    {"spec.NCO_WIDTH": 31},
    {"spec.QUARTER_WAVE": [value // 2 for value in spec.QUARTER_WAVE]},
    {"line.SAMPLE_SHIFT": 9},
    {"line.HYSTERESIS": 29_000},
    {"line.BLANKING": 90},
    {"line.MAGNITUDE_WIDTH": 8},
    {"line.HALF_CYCLE_MAX": 60},
    {"line.MEASUREMENT_CYCLES_LOG2": 3, "line.PERIOD_FRACTION": 13},
    {"line.INTERPOLATION_BITS": 6, "line.PERIOD_FRACTION": 12},
]


def _run(changes, cache_dir, *, jit=True):
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    environment.pop("NUMBA_DISABLE_JIT", None)
    if not jit:
        environment["NUMBA_DISABLE_JIT"] = "1"
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(changes)], env=environment,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_cached_kernels_follow_changed_constants(tmp_path):
    cache = tmp_path / "numba-cache"
    unchanged, = _run(CHANGES[:1], cache)
    assert any(cache.rglob("*.nbc")), "the first run cached nothing, so the test proves nothing"
    cached = _run(CHANGES, cache)
    interpreted = _run(CHANGES, tmp_path / "unused", jit=False)
    assert cached[0] == interpreted[0] == unchanged
    for change, from_cache, reference in zip(CHANGES[1:], cached[1:], interpreted[1:]):
        assert reference != unchanged, f"{change} changes nothing the test sees"
        assert from_cache == reference, f"a cached kernel kept the old value of {change}"
