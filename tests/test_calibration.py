"""One-point calibration of a simulated meter whose front end has gain errors."""

import pytest

from refmeter.gateware.hostlink.protocol import Status
from refmeter.sim.analog import AS_BUILT, Load
from refmeter.sim.simulators import open_simulation
from refmeter.soft.calibration import calibrate_gain, calibrate_phase_angle, wait_for_windows
from refmeter.soft.device import Meter
from refmeter.soft.errors import MeterError, RequestRefused
from refmeter.soft.measurements import read_phase
from refmeter.gateware.security.authority import Authority
from refmeter.soft.security import CommandRefused, KeySet, provision, send_command

from conftest import require_simulator

LOAD = Load(230.0, 10.0)
#: Ten cycles at 50 Hz: whole cycles, like the default 1 s window, in a fifth of the
#: meter's time (window_samples is written with the seal open).
SHORT_WINDOW = 1600


@pytest.fixture
def as_built():
    """Opens a Verilator meter measuring LOAD through the as-built front end."""
    require_simulator("verilator")
    meters = []

    def open_meter(*, seal_open: bool) -> Meter:
        meter = Meter(open_simulation("verilator", load=LOAD, front_end=AS_BUILT,
                                      seal_open=seal_open), timeout=5)
        meters.append(meter)
        return meter
    yield open_meter
    for meter in meters:
        meter.close()


def test_calibration_corrects_the_gain_errors(as_built):
    """Before: off by the front end's +0.3 % / -0.5 %; after: within 0.02 %, and each
    write was counted by the seal."""
    meter = as_built(seal_open=True)
    meter.write("window_samples", SHORT_WINDOW)
    keys = KeySet.generate(meter.identity().meter_id)
    provision(meter, keys)
    result = calibrate_gain(meter, keys, voltage_v=LOAD.voltage_rms, current_a=LOAD.current_rms,
                            windows=2)
    assert result.measured_voltage_v == pytest.approx(230 * 1.003, rel=2e-4)
    assert result.measured_current_a == pytest.approx(10 * 0.995, rel=2e-4)
    # The seal counted window_samples too.
    assert meter.read("seal_status")["calibration_writes"] == 1 + len(result.registers) == 5

    wait_for_windows(meter, 1, timeout_s=60)
    reading = read_phase(meter)
    assert reading.voltage_rms_v == pytest.approx(230, rel=2e-4)
    assert reading.current_rms_a == pytest.approx(10, rel=2e-4)
    assert reading.active_power_w == pytest.approx(2300, rel=5e-4)


@pytest.mark.parametrize("angle", [0.0, 3.0, 88.0, -90.0])
def test_phase_calibration_needs_an_angle_away_from_pf_1_and_0(angle):
    """Near PF 1 or 0 one of P and Q1 hardly moves with the angle: refused before any
    register is touched (the meter is never used)."""
    with pytest.raises(ValueError, match="too near PF 1 or 0"):
        calibrate_phase_angle(None, None, angle_deg=angle)


def test_calibration_is_refused_with_the_seal_closed(as_built):
    """Seal closed: the calibration stops before measuring; a direct write is SEALED
    and nothing changes."""
    meter = as_built(seal_open=False)
    before = meter.read("voltage_scale_l1")
    keys = KeySet.generate(meter.identity().meter_id)
    with pytest.raises(MeterError, match="the seal is closed"):
        calibrate_gain(meter, keys, voltage_v=230, current_a=10)
    with pytest.raises(MeterError, match="the seal is closed"):
        calibrate_phase_angle(meter, keys, angle_deg=60)
    with pytest.raises(RequestRefused) as refusal:
        meter.write("voltage_scale_l1", before + 1000)
    assert refusal.value.status is Status.SEALED
    assert meter.read("voltage_scale_l1") == before
    assert meter.read("seal_status")["calibration_writes"] == 0


def test_calibration_registers_take_only_local_commands(as_built):
    """Seal open: a plain write is UNAUTHENTICATED, the supplier's command is refused
    by the bank (FORBIDDEN), and only the local authority's command writes."""
    meter = as_built(seal_open=True)
    keys = KeySet.generate(meter.identity().meter_id)
    provision(meter, keys)
    before = meter.read("voltage_scale_l1")
    with pytest.raises(RequestRefused) as refusal:
        meter.write("voltage_scale_l1", before + 1000)
    assert refusal.value.status is Status.UNAUTHENTICATED
    with pytest.raises(CommandRefused, match="FORBIDDEN"):
        send_command(meter, keys, Authority.SUPPLIER, "voltage_scale_l1", before + 1000)
    assert meter.read("voltage_scale_l1") == before
    send_command(meter, keys, Authority.LOCAL, "voltage_scale_l1", before + 1000)
    assert meter.read("voltage_scale_l1") == before + 1000
    assert meter.read("seal_status")["calibration_writes"] == 1
