"""The three-phase meter with its neutral (as on the ULX3S) under Verilator, driven by
the `refmeter` command through a socket:// URL: every phase measured against its
load, the neutral current against the sum of the phase currents, and total energy
that nets a phase's export against another's import."""

import cmath
import json
import math
import time

import pytest

from refmeter.gateware.metrology.core import PHASE_NAMES
from refmeter.sim.analog import Harmonic, Load
from refmeter.soft.cli import main
from refmeter.soft.device import Meter
from refmeter.soft.transport import SerialTransport

from conftest import require_simulator, served_simulation

#: l1 imports what l3 exports; l2 is a small lagging load with a third harmonic,
#: which the neutral collects.
LOADS = (
    Load(230.0, 80.0),
    Load(230.0, 20.0, 60.0, current_harmonics=(Harmonic(3, 0.2, 30.0),)),
    Load(230.0, 80.0, 180.0),
)


def neutral_rms(loads: tuple[Load, ...]) -> float:
    """RMS of the sum of the phase currents, from the loads' definitions: phase k lags
    l1 by k/3 of a cycle, which turns a component of order h by h * k * 120 degrees."""
    by_order: dict[int, complex] = {}
    for k, load in enumerate(loads):
        for order, amplitude, phase in load.components()[1]:
            by_order[order] = by_order.get(order, 0) + cmath.rect(
                amplitude, phase - order * k * 2 * math.pi / len(loads))
    return math.sqrt(sum(abs(phasor) ** 2 / 2 for phasor in by_order.values()))


@pytest.fixture(scope="module")
def three_phase_meter(tmp_path_factory):
    require_simulator("verilator")
    loads = tmp_path_factory.mktemp("loads") / "loads.json"
    loads.write_text(json.dumps([
        {"voltage_rms": load.voltage_rms, "current_rms": load.current_rms,
         "phase_deg": load.phase_deg,
         "current_harmonics": [{"order": h.order, "fraction": h.fraction, "phase_deg": h.phase_deg}
                               for h in load.current_harmonics]}
        for load in LOADS]))
    with served_simulation("--simulator", "verilator", "--phases", "3",
                           "--load", str(loads)) as (_, url):
        yield url


def test_every_phase_and_the_neutral_read_their_loads(three_phase_meter, capsys):
    with Meter(SerialTransport(three_phase_meter), timeout=5) as meter:
        assert meter.check_register_map() and meter.read("phases") == 3
        deadline = time.monotonic() + 120
        while meter.read("windows_completed") < 2:
            assert time.monotonic() < deadline, "no measurement window within 120 s"
            time.sleep(0.5)
    assert main(["--url", three_phase_meter, "read", "--json"]) == 0
    measurements = json.loads(capsys.readouterr().out)["measurements"]
    for phase, load in zip(PHASE_NAMES, LOADS):
        reading = measurements[phase]
        voltage, current = load.true_rms
        power = load.voltage_rms * load.current_rms * math.cos(math.radians(load.phase_deg))
        assert reading["voltage_rms_v"] == pytest.approx(voltage, rel=5e-4), phase
        assert reading["current_rms_a"] == pytest.approx(current, rel=5e-4), phase
        assert reading["active_power_w"] == pytest.approx(power, rel=1e-3, abs=2.0), phase
    total = measurements["total"]
    assert total["neutral_current_rms_a"] == pytest.approx(neutral_rms(LOADS), rel=1e-3)
    assert total["active_power_w"] == pytest.approx(
        sum(measurements[phase]["active_power_w"] for phase in PHASE_NAMES))


def _energy(meter: Meter) -> dict[str, int]:
    """The energy registers at one instant: read until two passes agree."""
    names = [f"active_{direction}_wh_{phase}" for phase in PHASE_NAMES
             for direction in ("import", "export")]
    names += ["active_import_wh_total", "active_export_wh_total"]
    last = None
    while True:
        values = {name: int(meter.read(name)) for name in names}
        values["balance"] = meter.read("total_balance")["active"]
        if values == last:
            return values
        last = values


def test_total_energy_nets_one_phase_export_against_another_import(three_phase_meter):
    with Meter(SerialTransport(three_phase_meter), timeout=5) as meter:
        deadline = time.monotonic() + 180
        while int(meter.read("active_import_wh_l1")) < 10:
            assert time.monotonic() < deadline, "l1 counted less than 10 Wh in 180 s"
            time.sleep(1)
        energy = _energy(meter)
    net = sum(energy[f"active_import_wh_{phase}"] - energy[f"active_export_wh_{phase}"]
              for phase in PHASE_NAMES)
    assert (energy["active_import_wh_total"] - energy["active_export_wh_total"]
            + energy["balance"]) == net
    # l1's import and l3's export cancel: only l2's import reaches a total.
    assert energy["active_import_wh_l1"] + energy["active_export_wh_l3"] >= 19
    assert energy["active_export_wh_total"] == 0
    assert energy["active_import_wh_total"] <= energy["active_import_wh_l2"] + 2
