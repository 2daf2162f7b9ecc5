"""The meter top level: everything inside the seal, with the pins it needs.

:func:`meter_register_map` is the one declaration of the host-visible registers;
:class:`Meter` builds its register bank from it and the host (``refmeter.soft``)
builds its map from it too.
"""

import re
import subprocess
from importlib import metadata
from pathlib import Path

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .adc.ads131m04 import CHANNELS, ADS131M04Receiver
from .hostlink.link import HostLink
from .interlock import (AuxLevel, InterlockLog, InterlockParameters, LoadSwitchInterlock,
                        RelaySignature)
from .interlock.demand import Demand
from .interlock.interlock import REQUEST_REGISTER
from .hostlink.uart import baud_divisor
from .metrology.core import PHASE_NAMES, Metrology, metrology_registers
from .metrology.totals import EnergyTotals
from .metrology.events import EventLog
from .metrology.line import LineMonitor, line_registers
from .metrology.profile import ENERGY_WIDTH, LoadProfile
from .registers import (Access, Field, Register, RegisterBank, RegisterMap,
                        connect_registers)
from .rtc import RealTimeClock
from .security.frames import system_title
from .security.authority import Authority
from .security.unit import SecurityResult, SecurityUnit

__all__ = ["Meter", "meter_register_map", "gateware_version", "source_revision",
           "DEMO_METER_ID"]

#: EUI-64 of demonstration meters. The first octet has the locally-administered bit
#: set: refmeter owns no OUI, so a real deployment assigns its own identities.
DEMO_METER_ID = 0x02_52_45_46_00_00_00_01

IDENTITY_REGISTERS = (
    Register.number("meter_id", Access.RO, 64,
                    "meter identity, EUI-64 (also the certificate's hwSerialNum)"),
    Register("gateware_version", Access.RO, (
        Field("patch", 8, "patch version"),
        Field("minor", 8, "minor version"),
        Field("major", 8, "major version"),
    ), "version of the refmeter gateware in this bitstream"),
    Register.number("build_hash", Access.RO, 32,
                    "first 32 bits of the git commit built from; 0 when unknown"),
    Register.number("register_map_hash", Access.RO, 32,
                    "fingerprint of this register map, to detect a host/gateware mismatch"),
    Register.number("phases", Access.RO, 2,
                    "phases measured: 1, or 3 with the neutral current (the register map "
                    "follows: the host reads this first)"),
    Register("features", Access.RO, (
        Field("security", 1, "the security unit is built (else nothing authenticated is "
                             "accepted)"),
        Field("interlock", 1, "the load-switch interlock is built (else the relays never "
                              "switch)"),
    ), "what this bitstream carries besides metrology"),
)

SCRATCH_REGISTERS = (
    Register.number("scratch", Access.RW, 32,
                    "free for the host: link checks and tests", init=0),
)

SEAL_REGISTERS = (
    Register("seal_status", Access.RO, (
        Field("open", 1, "1 while the seal input is open (calibration allowed)"),
        Field("calibration_writes", 32, "writes to sealed registers since power-up; no "
                                        "command resets it"),
    ), "the metrology seal and the tamper-evident count of calibration writes"),
)

#: Phase k's voltage is ADC channel 2k and its current channel 2k + 1, counting the
#: channels of every ADS131M04 in turn (device 0's four, then device 1's); the
#: neutral current of a three-phase meter follows l3's, on channel 6.
CHANNELS_PER_PHASE = 2


def has_neutral(phases: int) -> bool:
    """Whether a ``phases``-phase meter measures its neutral current (three-phase ones)."""
    return phases == 3


def adc_devices(phases: int) -> int:
    """ADS131M04s a ``phases``-phase meter reads: four channels each."""
    channels = CHANNELS_PER_PHASE * phases + has_neutral(phases)
    return -(-channels // CHANNELS)

#: Load-profile records, a power of two: 512 half-hours (10.7 days) unless a board
#: passes more. The ring is the SPRAMs on an iCE40 UltraPlus (up to 8192 records),
#: block RAM elsewhere (gateware/single_port.py).
PROFILE_CAPACITY = 512
#: Voltage event records kept in block RAM, a power of two: 256 fill 4 EBRs.
EVENT_CAPACITY = 256
#: The interlock's active power is the average over this demand period, s.
DEMAND_PERIOD_S = 60


def meter_register_map(phases: int = 1) -> RegisterMap:
    """The registers of a ``phases``-phase meter and their addresses.

    Every register of a single-phase meter has the same address in a three-phase
    one, which adds phases l2 and l3 and the neutral.
    """
    register_map = RegisterMap()
    register_map.add_block(0x0000, IDENTITY_REGISTERS)
    register_map.add_block(0x0010, SCRATCH_REGISTERS)
    register_map.add_block(0x0011, HostLink.REGISTERS)
    register_map.add_block(0x0012, SEAL_REGISTERS)
    register_map.add_block(0x0020, ADS131M04Receiver.REGISTERS)
    register_map.add_block(0x0100, RealTimeClock.REGISTERS)
    register_map.add_block(0x0200, metrology_registers(phases, neutral=has_neutral(phases)))
    register_map.add_block(0x0280, EnergyTotals.REGISTERS)
    register_map.add_block(0x0300, LoadProfile.REGISTERS)
    register_map.add_block(0x0400, tuple(register for phase in PHASE_NAMES[:phases]
                                         for register in line_registers(phase)))
    register_map.add_block(0x0500, EventLog.REGISTERS)
    register_map.add_block(0x0600, SecurityUnit.REGISTERS)
    register_map.add_block(0x0700, LoadSwitchInterlock.REGISTERS + (REQUEST_REGISTER,)
                           + InterlockLog.REGISTERS)
    return register_map


def gateware_version() -> tuple[int, int, int]:
    """(major, minor, patch) of the installed refmeter package."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", metadata.version("refmeter"))
    if match is None:
        raise ValueError(f"Cannot read a major.minor.patch version from {metadata.version('refmeter')!r}")
    major, minor, patch = map(int, match.groups())
    return major, minor, patch


def source_revision() -> int:
    """First 32 bits of the git commit of the gateware source, or 0 outside a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 0
    return int(commit[:8], 16)


class Meter(wiring.Component):
    """The refmeter gateware top level.

    Parameters
    ----------
    clk_freq : int
        System clock frequency, Hz (a whole number of kHz).
    baud : int
        Host-link UART rate, bits/s.
    meter_id : int
        EUI-64 reported in the identity block.
    build_hash : int
        32-bit source revision reported in the identity block.
    time_preset : bool
        Give the meter a ``utc_preset`` port that sets its clock. Only simulation
        harnesses ask for it, to start a simulated meter at the host's time; on a
        board the clock starts at the epoch until it is set over the link.
    frame_timeout_ms : int
        Idle time after which a partly received frame is dropped, ms.
    profile_capacity : int
        Load-profile records kept in block RAM, a power of two.
    event_capacity : int
        Voltage event records kept in block RAM, a power of two.
    phases : int
        Phases measured, 1 to 3; a three-phase meter also measures its neutral
        current. Each ADS131M04 takes two phases (see :data:`CHANNELS_PER_PHASE`).
    security : bool
        Build the security unit (key slots, authenticated writes, sealed readings).
        Without it the registers are there, ``security_status.result`` says
        ``NO_ENGINE``, and nothing that needs an authenticated write can be written:
        a build for a board that cannot hold the AES-GCM engine yet.
    interlock : bool
        Build the load-switch interlock and its event log. Without it the registers
        are there and read their reset values, ``features.interlock`` is 0, and the
        relay coils are never driven.
    interlock_parameters : InterlockParameters
        The interlock's fixed times and limits (shortened only in tests).

    Attributes
    ----------
    uart_rx : Signal(), in
        Host-link serial input.
    uart_tx : Signal(), out
        Host-link serial output.
    heartbeat : Signal(), out
        Toggles every second (an LED on boards: the meter is alive).
    utc_preset : stream in, only with ``time_preset``
        UTC seconds to set the clock to.
    adc_sclk, adc_cs_n, adc_copi : Signal(), out; adc_drdy_n : Signal(), in
        The ADS131M04 metering ADCs' shared SPI pins and device 0's data-ready.
    adc_cipo : Signal(adc_devices(phases)), in
        Each ADC's DOUT, device 0 in bit 0.
    seal_open : Signal(), in
        The seal jumper: calibration registers are writable only while it is high.
    energy_pulse : Signal(), out
        The test LED: a 30 ms pulse per Wh (1000 imp/kWh).
    main_relay, priority_relay : :class:`~refmeter.gateware.interlock.RelaySignature`, out
        The supply's and the priority circuit's latching relays: coils and contact
        feedback.
    aux_level : Signal(AuxLevel), out
        What the auxiliary load (EV charger, heat pump) may draw.
    button : Signal(), in
        The consumer's reconnect push button, 1 while pressed.
    isolate : Signal(), in
        The manual isolation switch, 1 in isolate.
    aux_override : Signal(), in
        The consumer's auxiliary-load override button, 1 while pressed.
    """

    #: Test LED pulse length, ms.
    PULSE_MS = 30

    def __init__(self, *, clk_freq: int, baud: int, meter_id: int = DEMO_METER_ID,
                 build_hash: int = 0, frame_timeout_ms: int = 10, time_preset: bool = False,
                 profile_capacity: int = PROFILE_CAPACITY, event_capacity: int = EVENT_CAPACITY,
                 phases: int = 1, security: bool = True, interlock: bool = True,
                 interlock_parameters: InterlockParameters = InterlockParameters()):
        if not 0 <= meter_id < 1 << 64:
            raise ValueError(f"Meter id must be an EUI-64 (64-bit), not {meter_id:#x}")
        if not 0 <= build_hash < 1 << 32:
            raise ValueError(f"Build hash must fit 32 bits, not {build_hash:#x}")
        if frame_timeout_ms < 1:
            raise ValueError(f"Frame timeout must be at least 1 ms, not {frame_timeout_ms}")
        self._clk_freq = clk_freq
        self._divisor = baud_divisor(clk_freq, baud)
        self._meter_id = meter_id
        self._build_hash = build_hash
        self._frame_timeout = frame_timeout_ms * clk_freq // 1000
        self._profile_capacity = profile_capacity
        self._event_capacity = event_capacity
        self._security = security
        self._interlock = interlock
        self._interlock_parameters = interlock_parameters
        self._phases = phases
        self._register_map = meter_register_map(phases)
        members = {
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "heartbeat": Out(1),
            "adc_sclk": Out(1),
            "adc_cs_n": Out(1, init=1),
            "adc_copi": Out(1),
            "adc_cipo": In(adc_devices(phases)),
            "adc_drdy_n": In(1, init=1),
            "seal_open": In(1),
            "energy_pulse": Out(1),
            "main_relay": Out(RelaySignature()),
            "priority_relay": Out(RelaySignature()),
            "aux_level": Out(AuxLevel),
            "button": In(1),
            "isolate": In(1),
            "aux_override": In(1),
        }
        if time_preset:
            members["utc_preset"] = In(stream.Signature(32))
        super().__init__(members)

    @property
    def clk_freq(self) -> int:
        return self._clk_freq

    @property
    def divisor(self) -> int:
        """UART bit time, clock cycles."""
        return self._divisor

    @property
    def phases(self) -> int:
        return self._phases

    @property
    def register_map(self) -> RegisterMap:
        return self._register_map

    def elaborate(self, platform):
        m = Module()
        phases = PHASE_NAMES[:self._phases]
        neutral = has_neutral(self._phases)
        m.submodules.metrology = metrology = Metrology(phases=self._phases, neutral=neutral)
        stores = dict(metrology.stores)
        if self._security:
            m.submodules.security = security = SecurityUnit(meter_id=self._meter_id)
            stores |= security.stores
        m.submodules.registers = bank = RegisterBank(self._register_map, stores=stores)
        m.submodules.hostlink = hostlink = HostLink(
            data_width=self._register_map.data_width, divisor=self._divisor,
            frame_timeout=self._frame_timeout)
        wiring.connect(m, hostlink.bus, bank.bus)
        m.submodules.rtc = rtc = RealTimeClock(clk_freq=self._clk_freq)
        with m.If(bank.utc_set.written):
            m.d.comb += [rtc.set.valid.eq(1), rtc.set.payload.eq(bank.utc_set.data.value)]
        if "utc_preset" in self.signature.members:
            with m.Elif(self.utc_preset.valid):
                m.d.comb += [rtc.set.valid.eq(1), rtc.set.payload.eq(self.utc_preset.payload),
                             self.utc_preset.ready.eq(1)]

        m.submodules.adc = adc = ADS131M04Receiver(sclk_divisor=2,
                                                   devices=adc_devices(self._phases))

        m.d.comb += [
            hostlink.rx.eq(self.uart_rx),
            self.uart_tx.eq(hostlink.tx),
            self.heartbeat.eq(rtc.seconds[0]),
            self.adc_sclk.eq(adc.sclk),
            self.adc_cs_n.eq(adc.cs_n),
            self.adc_copi.eq(adc.copi),
            adc.cipo.eq(self.adc_cipo),
            adc.drdy_n.eq(self.adc_drdy_n),
        ]

        # Each phase's voltage and current (see CHANNELS_PER_PHASE) go to the metrology
        # and its voltage to the phase's line monitor, as the ADC gives it (its offset
        # shifts every crossing alike and adds nothing measurable to Urms(1/2)). A
        # sample set goes to every consumer once all are ready; each monitor's
        # frequency tunes its phase's Q1.
        codes = adc.samples.payload
        metrology_phases = metrology.samples.payload.phases if neutral else metrology.samples.payload
        for index in range(self._phases):
            m.d.comb += [metrology_phases[index].voltage.eq(codes[CHANNELS_PER_PHASE * index]),
                         metrology_phases[index].current.eq(codes[CHANNELS_PER_PHASE * index + 1])]
        if neutral:
            m.d.comb += metrology.samples.payload.neutral.eq(codes[CHANNELS_PER_PHASE * self._phases])
        consumers = [metrology.samples]
        m.submodules.events = events = EventLog(capacity=self._event_capacity, phases=self._phases)
        for index, phase in enumerate(phases):
            m.submodules[f"line_{phase}"] = line = LineMonitor(phase=phase)
            m.d.comb += [line.samples.payload.eq(codes[CHANNELS_PER_PHASE * index]),
                         metrology.nco_step[index].eq(line.nco_step)]
            wiring.connect(m, line.events, events.events[index])
            connect_registers(m, bank, line, line.registers)
            consumers.append(line.samples)
        for consumer in consumers:
            others_ready = [other.ready for other in consumers if other is not consumer]
            m.d.comb += consumer.valid.eq(adc.samples.valid & Cat(others_ready).all())
        m.d.comb += adc.samples.ready.eq(Cat(consumer.ready for consumer in consumers).all())
        connect_registers(m, bank, metrology, metrology.registers)
        for store in metrology.stores:
            wiring.connect(m, getattr(bank, store), getattr(metrology, store))
        m.d.comb += [events.utc_seconds.eq(rtc.seconds), events.utc_millisecond.eq(rtc.millisecond)]
        connect_registers(m, bank, events, events.registers)

        m.submodules.totals = totals = EnergyTotals(phases=self._phases)
        m.d.comb += [totals.active_imported.eq(metrology.imported),
                     totals.active_exported.eq(metrology.exported),
                     totals.reactive_imported.eq(metrology.reactive_imported),
                     totals.reactive_exported.eq(metrology.reactive_exported)]
        connect_registers(m, bank, totals, totals.registers)

        # The load profile records the total energy: the profile takes the totals' low
        # bits, a sealed snapshot all of them.
        m.submodules.profile = profile = LoadProfile(capacity=self._profile_capacity)
        m.d.comb += [
            profile.utc_seconds.eq(rtc.seconds),
            profile.tick_ms.eq(rtc.tick_ms),
            profile.import_wh.eq(totals.import_wh[:ENERGY_WIDTH]),
            profile.export_wh.eq(totals.export_wh[:ENERGY_WIDTH]),
        ]
        connect_registers(m, bank, profile, profile.registers)

        if self._security:
            # The unit's authenticated writes go through the host link's bridge.
            wiring.connect(m, security.local, hostlink.local)
            for store in security.stores:
                wiring.connect(m, getattr(bank, store), getattr(security, store))
            m.d.comb += [
                security.profile_record.eq(profile.profile_record.as_value()),
                security.utc_seconds.eq(rtc.seconds),
                security.import_wh.eq(totals.import_wh),
                security.export_wh.eq(totals.export_wh),
            ]
            connect_registers(m, bank, security, security.registers)
        else:
            m.d.comb += [
                bank.system_title.value.eq(int.from_bytes(system_title(self._meter_id), "big")),
                bank.security_status.result.eq(SecurityResult.NO_ENGINE),
            ]

        if self._interlock:
            self._add_interlock(m, bank, rtc, metrology, security if self._security else None)

        # The seal: an input synchronised like any pin, and a count of what it let through.
        seal_open = Signal()
        m.submodules.seal_sync = FFSynchronizer(self.seal_open, seal_open)
        m.d.comb += [bank.seal_open.eq(seal_open), bank.seal_status.open.eq(seal_open)]
        with m.If(bank.sealed_write):
            m.d.sync += bank.seal_status.calibration_writes.eq(bank.seal_status.calibration_writes + 1)

        pulse_left = Signal(range(self.PULSE_MS + 1))
        with m.If(metrology.quantum):
            m.d.sync += pulse_left.eq(self.PULSE_MS)
        with m.Elif(rtc.tick_ms & (pulse_left != 0)):
            m.d.sync += pulse_left.eq(pulse_left - 1)
        m.d.comb += self.energy_pulse.eq(pulse_left != 0)

        major, minor, patch = gateware_version()
        m.d.comb += [
            bank.meter_id.value.eq(self._meter_id),
            bank.gateware_version.major.eq(major),
            bank.gateware_version.minor.eq(minor),
            bank.gateware_version.patch.eq(patch),
            bank.build_hash.value.eq(self._build_hash),
            bank.register_map_hash.value.eq(self._register_map.fingerprint()),
            bank.phases.value.eq(self._phases),
            bank.features.security.eq(self._security),
            bank.features.interlock.eq(self._interlock),
            bank.link_status.rejected_frames.eq(hostlink.rejected_frames),
            bank.link_status.framing_errors.eq(hostlink.framing_errors),
            bank.link_status.overruns.eq(hostlink.overruns),
            bank.utc_time.seconds.eq(rtc.seconds),
            bank.utc_time.millisecond.eq(rtc.millisecond),
            bank.adc_status.crc_errors.eq(adc.crc_errors),
            bank.adc_status.missed_frames.eq(adc.missed_frames),
            bank.adc_status.overruns.eq(adc.overruns),
            bank.adc_status.configured.eq(adc.configured),
        ]
        return m

    def _add_interlock(self, m: Module, bank: RegisterBank, rtc: RealTimeClock,
                       metrology: Metrology, security: "SecurityUnit | None") -> None:
        """The interlock, its log and what feeds them: the clock, the demand, the
        switch inputs (synchronised like any pin) and the security unit's verdicts."""
        parameters = self._interlock_parameters
        m.submodules.interlock = interlock = LoadSwitchInterlock(
            meter_id=self._meter_id, parameters=parameters)
        m.submodules.interlock_log = log = InterlockLog()
        wiring.connect(m, interlock.event, log.events)
        connect_registers(m, bank, interlock, interlock.REGISTERS)
        connect_registers(m, bank, log, log.REGISTERS)
        for pin, name in ((self.button, "button"), (self.isolate, "isolate"),
                          (self.aux_override, "aux_override_button")):
            m.submodules[f"{name}_sync"] = FFSynchronizer(pin, getattr(interlock, name))
        for relay in ("main_relay", "priority_relay"):
            wiring.connect(m, getattr(interlock, relay), wiring.flipped(getattr(self, relay)))
        m.d.comb += [interlock.tick_ms.eq(rtc.tick_ms), interlock.utc_seconds.eq(rtc.seconds),
                     self.aux_level.eq(interlock.aux_level)]

        m.submodules.demand = demand = Demand(phases=self._phases, period_s=DEMAND_PERIOD_S)
        m.d.comb += [demand.tick_ms.eq(rtc.tick_ms), demand.imported.eq(metrology.imported),
                     demand.exported.eq(metrology.exported)]
        wiring.connect(m, demand.power, interlock.active_power)

        if security is None:
            return
        # A verified command to interlock_request reaches the interlock with its slot
        # and counter; one that failed verification, as a claim to log and refuse.
        # The bank takes that register's writes from the security unit only.
        request, origin = interlock.request, security.origin
        asked = bank.interlock_request
        m.d.comb += [request.payload.authority.eq(origin.authority),
                     request.payload.counter.eq(origin.counter)]
        with m.If(asked.written):
            m.d.comb += [request.valid.eq(1),
                         request.payload.authenticated.eq(1),
                         request.payload.action.eq(asked.data.action),
                         request.payload.target.eq(asked.data.target),
                         request.payload.request_id.eq(asked.data.request_id)]
        with m.Elif(security.rejected
                    & (origin.address == self._register_map.address_of("interlock_request"))
                    & (origin.authority < len(Authority))):
            m.d.comb += request.valid.eq(1)

