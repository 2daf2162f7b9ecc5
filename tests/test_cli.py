"""The `refmeter` command, end to end: a co-simulation served on TCP and read
through a socket:// URL, exactly as a board is read through its serial port."""

import datetime
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from refmeter.gateware.meter import DEMO_METER_ID
from refmeter.soft.cli import main
from refmeter.soft.registers import registers_markdown

from conftest import REFMETER, require_simulator, served_simulation

ROOT = Path(__file__).parent.parent


def refmeter(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # Only a guard against a hang: reading every register of a meter in the Amaranth
    # simulator takes about a minute on a machine busy with other simulations.
    return subprocess.run([REFMETER, *args], capture_output=True, text=True, timeout=timeout)


def _children(pid: int) -> set[int]:
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(child) for child in (task / "children").read_text().split()}
    return children


@pytest.fixture
def cosim(simulator):
    """`refmeter sim` on a free port; yields (process, url)."""
    with served_simulation("--simulator", simulator) as served:
        yield served


def test_read_json_through_socket_url(cosim):
    """`refmeter --url socket://… read --json` reads the simulated meter's registers."""
    _, url = cosim
    result = refmeter("--url", url, "read", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["url"] == url
    assert document["meter_id"] == "02-52-45-46-00-00-00-01"
    assert document["registers"]["meter_id"] == DEMO_METER_ID
    assert set(document["registers"]["utc_time"]) == {"seconds", "millisecond"}


def test_write_then_read_back_through_socket_url(cosim):
    """A value written with `refmeter write` is what a later `refmeter read` sees."""
    _, url = cosim
    assert refmeter("--url", url, "write", "scratch", "0xC0FFEE").returncode == 0
    result = refmeter("--url", url, "read", "scratch", "--json")
    assert json.loads(result.stdout)["registers"] == {"scratch": 0xC0FFEE}


def test_uart_has_one_client_at_a_time(cosim):
    """While one client is connected, a second is refused; the first is unaffected."""
    _, url = cosim
    host, port = url.removeprefix("socket://").split(":")
    with socket.create_connection((host, int(port))) as first:
        with socket.create_connection((host, int(port))) as second:
            second.settimeout(10)
            assert second.recv(1) == b""  # closed by the server
        first.sendall(b"\x00")  # still open
    result = refmeter("--url", url, "read", "meter_id")
    assert result.returncode == 0, result.stderr


def test_ctrl_c_stops_the_simulation_cleanly(cosim):
    """SIGINT ends `refmeter sim` with exit 0, frees the port and leaves no child behind."""
    process, url = cosim
    children = _children(process.pid)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert "stopped" in process.stderr.read()
    for child in children:
        assert not Path(f"/proc/{child}").exists(), f"child {child} outlived refmeter sim"
    host, port = url.removeprefix("socket://").split(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5)


def test_connection_refused_is_a_link_error(capsys):
    """Nothing listening: exit 3 with a message that says what to start."""
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["--url", f"socket://127.0.0.1:{port}", "read"]) == 3
    assert "is `refmeter sim` running there?" in capsys.readouterr().err


def test_missing_serial_port_is_a_link_error(capsys, tmp_path):
    """A board that is not connected: exit 3 naming the port."""
    port = tmp_path / "ttyUSB9"
    assert main(["--url", str(port), "read"]) == 3
    err = capsys.readouterr().err
    assert str(port) in err and "is the board connected" in err


def test_refusal_is_exit_1_and_bad_names_exit_2(capsys):
    """A write the meter refuses is exit 1; a register the map lacks is exit 2."""
    assert main(["--url", "sim:amaranth", "write", "meter_id", "5"]) == 1
    assert "READ_ONLY" in capsys.readouterr().err
    assert main(["--url", "sim:amaranth", "read", "no_such_register"]) == 2
    assert "No register named 'no_such_register'" in capsys.readouterr().err
    assert main(["--url", "sim:amaranth", "write", "scratch", "twelve"]) == 2


@pytest.mark.parametrize("command", ["demo", "sim", "read", "write", "regs", "profile", "calibrate",
                                     "build", "program"])
def test_every_command_has_help_with_examples(command):
    """Each subcommand's --help shows at least one example invocation."""
    result = refmeter(command, "--help")
    assert result.returncode == 0
    _, examples = result.stdout.split("examples:", 1)
    assert "refmeter" in examples and f" {command} " in examples


def test_register_docs_are_generated_from_the_gateware():
    """docs/registers.md is exactly what `refmeter regs --phases 3 --markdown` generates."""
    assert (ROOT / "docs" / "registers.md").read_text() == registers_markdown()


def test_demo_reads_the_meter_through_the_cosimulation():
    """The README's first command runs and shows the meter it read."""
    result = refmeter("demo", "--simulator", os.environ.get("REFMETER_DEMO_SIMULATOR", "amaranth"))
    assert result.returncode == 0, result.stderr
    assert "02-52-45-46-00-00-00-01" in result.stdout
    assert "wrote 0xc0ffee, read back 0xc0ffee" in result.stdout


def test_readme_script_example_runs():
    """The README's Python example runs as written."""
    readme = (ROOT / "README.md").read_text()
    (example,) = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    exec(compile(example, "README.md", "exec"), {})


def test_simulated_load_is_measured_through_the_whole_meter(tmp_path):
    """`refmeter sim` with a load: the gateware, fed by the ADC model over SPI, measures
    it, and `refmeter read --json` reports it in SI units (Verilator: a second of the
    meter's time takes seconds, not minutes)."""
    require_simulator("verilator")
    load = tmp_path / "load.json"
    load.write_text(json.dumps({"voltage_rms": 240, "current_rms": 12.5, "phase_deg": -36.87,
                                "current_harmonics": [{"order": 5, "fraction": 0.2}]}))
    with served_simulation("--simulator", "verilator", "--load", str(load)) as (_, url):
        deadline = time.monotonic() + 120
        while True:  # the second window is free of DC removal's start-up
            reading = json.loads(refmeter("--url", url, "read", "--json").stdout)
            registers = reading["registers"]
            if registers["windows_completed"] >= 3 and registers["fundamental_windows_completed"] >= 3 \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        phase = reading["measurements"]["l1"]
        assert phase["voltage_rms_v"] == pytest.approx(240, rel=0.001)
        # RMS counts the harmonic; active power does not (the voltage has no 5th).
        assert phase["current_rms_a"] == pytest.approx(12.5 * (1 + 0.2 ** 2) ** 0.5, rel=0.001)
        assert phase["active_power_w"] == pytest.approx(240 * 12.5 * 0.8, rel=0.001)
        # Leading current: Q1 is negative; importing with -R is quadrant IV (1.8 kvar
        # for 3 s is 1.5 varh).
        assert phase["reactive_power_var"] == pytest.approx(-240 * 12.5 * 0.6, rel=0.001)
        assert phase["reactive_energy_quadrants_varh"] == [0, 0, 0, 1]
        # The frequency is measured against the meter's sample clock, which the
        # simulated front end runs 23 ppm fast (1.15 mHz at 50 Hz).
        assert phase["frequency_hz"] == pytest.approx(50 / (1 + 23e-6), abs=0.0005)
        assert phase["voltage_half_cycle_v"] == pytest.approx(240, rel=0.002)
        assert phase["voltage_events"] == []
        assert json.loads(refmeter("--url", url, "events", "--json").stdout)["events"] == []
        assert reading["registers"]["adc_status"]["crc_errors"] == 0


def test_a_sag_is_logged_with_its_time_and_depth():
    """A supply at 65 % of the declared 230 V is a sag from the first whole cycle: the
    log holds its start, stamped with the meter's UTC time, with the voltage; `refmeter
    read` shows it in progress, and the line frequency (49.7 Hz) to within 1 mHz."""
    require_simulator("verilator")
    with served_simulation("--simulator", "verilator", "--voltage", "150", "--current", "1",
                           "--frequency", "49.7") as (_, url):
        deadline = time.monotonic() + 60
        while True:  # a frequency needs 64 cycles
            events = json.loads(refmeter("--url", url, "events", "--json").stdout)["events"]
            reading = json.loads(refmeter("--url", url, "read", "--json").stdout)
            if events and reading["measurements"]["l1"]["frequency_hz"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    (event,) = events
    assert (event["phase"], event["kind"], event["end"]) == ("l1", "sag", False)
    assert event["extreme_voltage_v"] == pytest.approx(150, rel=0.005)
    # The simulated meter starts at the host's time.
    started = datetime.datetime.fromisoformat(event["time"])
    assert abs(started - datetime.datetime.now(datetime.timezone.utc)) < datetime.timedelta(minutes=2)
    assert reading["measurements"]["l1"]["voltage_events"] == ["sag"]
    assert reading["measurements"]["l1"]["frequency_hz"] == pytest.approx(49.7 / (1 + 23e-6), abs=0.001)


def test_malformed_load_file_is_refused(tmp_path, capsys):
    """A load file with an unknown field is refused with exit 2, naming the field."""
    load = tmp_path / "load.json"
    load.write_text(json.dumps({"voltage_rms": 230, "curent_rms": 5}))
    assert main(["sim", "--load", str(load), "--simulator", "amaranth", "--port", "0"]) == 2
    assert "curent_rms" in capsys.readouterr().err


def test_load_profile_is_kept_by_the_meter_and_read_back(tmp_path):
    """With the interval shortened under an open seal, the meter records aligned
    intervals whose energy adds up to what it counted, and `refmeter profile --json`
    returns them oldest first."""
    require_simulator("verilator")
    with served_simulation("--simulator", "verilator", "--current", "100", "--seal-open") as (_, url):
        assert refmeter("--url", url, "write", "profile_interval_s", "1").returncode == 0
        # Four simulated seconds: well under a minute of Verilator, even on a busy machine.
        deadline = time.monotonic() + 300
        while True:
            records = json.loads(refmeter("--url", url, "profile", "--json").stdout)["records"]
            if len(records) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(1)
        registers = json.loads(refmeter("--url", url, "read", "--json").stdout)["registers"]
    assert len(records) >= 4
    full = records[1:]  # the first interval began when the interval was set
    ends = [datetime.datetime.fromisoformat(record["end"]) for record in full]
    assert all(later - earlier == datetime.timedelta(seconds=1) for earlier, later in zip(ends, ends[1:]))
    # 230 V x 100 A for 1 s is 6.4 Wh: each full interval holds 6 or 7 quanta.
    assert all(record["active_import_wh"] in (6, 7) and record["active_export_wh"] == 0
               for record in full)
    assert sum(record["active_import_wh"] for record in records) <= registers["active_import_wh_l1"]


def test_calibrate_command_corrects_an_uncalibrated_meter(tmp_path):
    """`refmeter calibrate` at PF 0.5 on a meter measuring through an as-built front
    end (gain errors, 0.3 samples of V/I skew), with keys provisioned, makes it read
    the reference's voltage and current within 0.02 % and its power factor within
    0.05 %, and the seal counts the writes; without the key file it writes nothing."""
    require_simulator("verilator")
    keys = tmp_path / "keys.json"

    def read_after_windows(url: str, count: int) -> dict:
        target = json.loads(refmeter("--url", url, "read", "--json").stdout)["registers"]["windows_completed"] + count
        while True:
            reading = json.loads(refmeter("--url", url, "read", "--json").stdout)
            if reading["registers"]["windows_completed"] >= target:
                return reading
            time.sleep(0.5)

    with served_simulation("--simulator", "verilator", "--current", "10", "--phase-angle", "60",
                           "--uncalibrated", "--seal-open") as (_, url):
        # Ten cycles at 50 Hz: whole cycles in a fifth of the default window's time.
        assert refmeter("--url", url, "write", "window_samples", "1600").returncode == 0
        uncalibrated = read_after_windows(url, 3)["measurements"]["l1"]
        calibrate = ("--url", url, "calibrate", "--voltage", "230", "--current", "10",
                     "--phase-angle", "60", "--windows", "2", "--keys", str(keys))
        refused = refmeter(*calibrate)
        assert refused.returncode == 2 and "cannot read the key file" in refused.stderr
        provisioned = refmeter("--url", url, "keys", "provision", "--keys", str(keys))
        assert provisioned.returncode == 0, provisioned.stderr
        result = refmeter(*calibrate)
        assert result.returncode == 0, result.stderr
        assert "voltage_scale_l1" in result.stdout and "phase_coefficient_l1" in result.stdout
        reading = read_after_windows(url, 2)
    # The skew's 0.68 degrees move PF 0.5 by 2 %.
    assert abs(uncalibrated["power_factor"] / 0.5 - 1) > 0.01
    phase = reading["measurements"]["l1"]
    assert phase["voltage_rms_v"] == pytest.approx(230, rel=2e-4)
    assert phase["current_rms_a"] == pytest.approx(10, rel=2e-4)
    assert phase["power_factor"] == pytest.approx(0.5, rel=5e-4)
    # window_samples, then the gain's four registers and the phase coefficient.
    assert reading["registers"]["seal_status"]["calibration_writes"] == 6
