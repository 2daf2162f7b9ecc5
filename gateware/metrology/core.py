"""Metrology of every phase, with its registers."""

from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..registers import Access, Guard, Register, RegisterStore, register_ports
from ..security.authority import Authority
from . import spec
from .phase import RESULTS_ADDRESS_WIDTH, PhaseMetrology, PhaseSample, published_words

__all__ = ["Metrology", "PHASE_NAMES", "QUADRANTS", "metrology_registers"]

PHASE_NAMES = ("l1", "l2", "l3")
#: The four quadrants of reactive energy, as their registers name them.
QUADRANTS = ("quadrant1", "quadrant2", "quadrant3", "quadrant4")

#: Calibration of the nominal front end, so an uncalibrated meter reads roughly right.
_VOLTAGE_SCALE_PV = round(spec.VOLTAGE_FULL_SCALE_V / spec.SAMPLE_MAX * 1e12)
_CURRENT_SCALE_PA = round(spec.CURRENT_FULL_SCALE_A / spec.SAMPLE_MAX * 1e12)
_WATTS_PER_RAW = _VOLTAGE_SCALE_PV * _CURRENT_SCALE_PA * 1e-24
_NOMINAL_QUANTUM = round(spec.JOULES_PER_WH * spec.SAMPLE_RATE_HZ / _WATTS_PER_RAW)
#: No-load threshold: 0.25 W over a 1 s window.
_NOMINAL_NOLOAD = round(0.25 * spec.SAMPLE_RATE_HZ / _WATTS_PER_RAW)


#: How calibration registers are written: by commands of the local authority (the
#: test bench beside the meter), verified by the security unit, while the seal is open.
CALIBRATION = {"guard": Guard.SEAL_AUTHENTICATED, "authorities": {Authority.LOCAL}}

def phase_registers(phase: str) -> tuple[Register, ...]:
    """The registers of phase ``phase`` (``l1`` ...): measurements, then calibration."""
    return (
        Register.number(f"window_active_{phase}", Access.RO, spec.SUM_WIDTH,
                        "sum of v*i over the last window, codes^2", signed=True),
        Register.number(f"window_voltage_squared_{phase}", Access.RO, spec.SUM_WIDTH,
                        "sum of v*v over the last window, codes^2"),
        Register.number(f"window_current_squared_{phase}", Access.RO, spec.SUM_WIDTH,
                        "sum of i*i over the last window, codes^2"),
        Register.number(f"active_import_wh_{phase}", Access.RO, spec.COUNTER_WIDTH,
                        "+A: energy quanta (Wh) imported (wraps)"),
        Register.number(f"active_export_wh_{phase}", Access.RO, spec.COUNTER_WIDTH,
                        "-A: energy quanta (Wh) exported (wraps)"),
        Register.number(f"energy_fraction_{phase}", Access.RO, spec.FRACTION_WIDTH,
                        "energy not yet counted as a quantum, raw units (codes^2 samples)",
                        signed=True),
        Register.number(f"window_reactive_{phase}", Access.RO, spec.REACTIVE_WIDTH,
                        "fundamental reactive energy Q1 t of the last fundamental window, raw "
                        "units (codes^2 samples), positive for lagging current", signed=True),
        *(Register.number(f"reactive_{quadrant}_varh_{phase}", Access.RO, spec.COUNTER_WIDTH,
                          f"reactive energy quanta (varh) in quadrant {number} (wraps)")
          for number, quadrant in zip(("I", "II", "III", "IV"), QUADRANTS)),
        Register.number(f"reactive_fraction_{phase}", Access.RO, spec.REACTIVE_WIDTH,
                        "reactive energy not yet counted as a quantum, raw units", signed=True),
        Register.number(f"phase_coefficient_{phase}", Access.RW, spec.PHASE_COEFFICIENT_WIDTH,
                        "all-pass coefficient of the current channel, Q1.17", signed=True,
                        **CALIBRATION),
        Register.number(f"energy_quantum_{phase}", Access.RW, spec.QUANTUM_WIDTH,
                        "raw units (codes^2 samples) per Wh", init=_NOMINAL_QUANTUM,
                        **CALIBRATION),
        Register.number(f"noload_threshold_{phase}", Access.RW, spec.QUANTUM_WIDTH,
                        "|window_active| below which the next window counts no energy",
                        init=_NOMINAL_NOLOAD, **CALIBRATION),
        Register.number(f"voltage_scale_{phase}", Access.RW, 32, "pV per voltage code",
                        init=_VOLTAGE_SCALE_PV, **CALIBRATION),
        Register.number(f"current_scale_{phase}", Access.RW, 32, "pA per current code",
                        init=_CURRENT_SCALE_PA, **CALIBRATION),
    )


def neutral_registers() -> tuple[Register, ...]:
    """The neutral conductor's registers: its current is measured, never its energy."""
    return (
        Register.number("window_current_squared_n", Access.RO, spec.SUM_WIDTH,
                        "sum of i*i of the neutral current over the last window, codes^2"),
        Register.number("current_scale_n", Access.RW, 32, "pA per neutral current code",
                        init=_CURRENT_SCALE_PA, **CALIBRATION),
    )


SHARED_REGISTERS = (
    Register.number("window_samples", Access.RW, spec.WINDOW_WIDTH,
                    "samples per measurement window", init=spec.SAMPLE_RATE_HZ,
                    guard=Guard.SEAL),
    Register.number("windows_completed", Access.RO, 32,
                    "windows published (wraps); equal before and after reading a phase's "
                    "window sums means they belong to one window"),
    Register.number("fundamental_windows_completed", Access.RO, 32,
                    f"fundamental windows ({1 << spec.FUNDAMENTAL_WINDOW_LOG2} sample sets) "
                    f"published (wraps)"),
)


#: Registers shared by the phases; every phase counts the windows alike, l1's are shown.
_SHARED = ("windows_completed", "fundamental_windows_completed")


def metrology_registers(phases: int, *, neutral: bool = False) -> tuple[Register, ...]:
    """Every register of a ``phases``-phase meter's metrology, with the neutral's."""
    if not 1 <= phases <= len(PHASE_NAMES):
        raise ValueError(f"A meter has 1 to {len(PHASE_NAMES)} phases, not {phases}")
    return (SHARED_REGISTERS
            + tuple(register for phase in PHASE_NAMES[:phases] for register in phase_registers(phase))
            + (neutral_registers() if neutral else ()))


class Metrology(wiring.Component):
    """:class:`PhaseMetrology` for each of ``phases`` phases, behind registers.

    Besides ``samples`` (one :data:`PhaseSample` per phase, all taken at once, and
    with ``neutral`` the neutral current's code), ``nco_step`` (each phase's line
    frequency, cycles per sample set * 2**32), ``imported`` and ``exported`` (a bit
    per phase that pulses with each active energy quantum it counts), likewise
    ``reactive_imported`` and ``reactive_exported`` (+R and -R quanta), and
    ``quantum`` (a pulse per active energy quantum of any phase, for the test LED), it
    has a port per register of :attr:`registers` (the calibration) and a read port per
    store of :attr:`stores`: each phase keeps its measurements (and phase l1 the window
    counts) in block RAM, as a :class:`~refmeter.gateware.registers.RegisterStore`
    named ``results_<phase>``.

    The neutral current goes through a phase's DSP of its own with the voltage held
    at zero, so its ``window_current_squared_n`` is computed exactly as the phases'
    current sums are (and the bit-exact model covers it); with no voltage it counts
    no energy.
    """

    def __init__(self, *, phases: int = 1, neutral: bool = False):
        registers = metrology_registers(phases, neutral=neutral)
        self._phases = PHASE_NAMES[:phases]
        self._neutral = neutral
        words = published_words()
        self.stores = {
            f"results_{phase}": RegisterStore(
                addresses={name if name in _SHARED else f"{name}_{phase}": address
                           for name, address in words.items()
                           if name not in _SHARED or index == 0},
                address_width=RESULTS_ADDRESS_WIDTH)
            for index, phase in enumerate(self._phases)}
        if neutral:
            self.stores["results_n"] = RegisterStore(
                addresses={"window_current_squared_n": words["window_current_squared"]},
                address_width=RESULTS_ADDRESS_WIDTH)
        stored = {name for store in self.stores.values() for name in store.addresses}
        self.registers = tuple(register for register in registers if register.name not in stored)
        sample_layout = data.ArrayLayout(PhaseSample, phases)
        if neutral:
            sample_layout = data.StructLayout({"phases": sample_layout,
                                               "neutral": signed(spec.SAMPLE_WIDTH)})
        super().__init__({
            "samples": In(stream.Signature(sample_layout)),
            "nco_step": In(data.ArrayLayout(spec.NCO_WIDTH, phases)),
            "imported": Out(phases),
            "exported": Out(phases),
            "reactive_imported": Out(phases),
            "reactive_exported": Out(phases),
            "quantum": Out(1),
            **{name: Out(store.signature) for name, store in self.stores.items()},
            **register_ports(self.registers),
        })

    def elaborate(self, platform):
        m = Module()
        phase_samples = self.samples.payload.phases if self._neutral else self.samples.payload
        ready = 1

        def add_dsp(name, results):
            nonlocal ready
            m.submodules[name] = dsp = PhaseMetrology()
            m.d.comb += [
                dsp.sample.valid.eq(self.samples.valid & self.samples.ready),
                dsp.window_samples.eq(self.window_samples.value),
                dsp.results.addr.eq(results.addr),
                dsp.results.en.eq(results.en),
                results.data.eq(dsp.results.data),
            ]
            ready &= dsp.sample.ready
            return dsp

        for index, phase in enumerate(self._phases):
            def port(name):
                return getattr(self, f"{name}_{phase}").value

            dsp = add_dsp(phase, getattr(self, f"results_{phase}"))
            m.d.comb += [
                dsp.sample.payload.eq(phase_samples[index]),
                dsp.phase_coefficient.eq(port("phase_coefficient")),
                dsp.energy_quantum.eq(port("energy_quantum")),
                dsp.noload_threshold.eq(port("noload_threshold")),
                dsp.nco_step.eq(self.nco_step[index]),
                self.imported[index].eq(dsp.imported),
                self.exported[index].eq(dsp.exported),
                self.reactive_imported[index].eq(dsp.reactive_imported),
                self.reactive_exported[index].eq(dsp.reactive_exported),
            ]
        if self._neutral:
            # No voltage: the no-load gate stays shut (threshold above any |sum of v*i|).
            dsp = add_dsp("n", self.results_n)
            m.d.comb += [dsp.sample.payload.current.eq(self.samples.payload.neutral),
                         dsp.noload_threshold.eq(-1)]
        m.d.comb += [self.samples.ready.eq(ready),
                     self.quantum.eq((self.imported | self.exported).any())]
        return m
