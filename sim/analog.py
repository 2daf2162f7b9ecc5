"""The analogue world: line voltage and current, and the front end that turns
them into ADC codes.

A :class:`Load` describes steady-state waveforms (fundamental, harmonics, phase);
:func:`reference_energy` integrates ``v(t) * i(t)`` in closed form from that
definition, never from samples, so it is an independent reference for accuracy
tests. A :class:`FrontEnd` samples the waveforms as an ADS131M0x behind voltage
divider and current sensor would: its own sample clock (not locked to the line),
a random start phase, white noise at a chosen SNR, offset, gain error and a
skew between the voltage and current sampling instants.
"""

import math
from dataclasses import dataclass

import numpy as np

from refmeter.gateware.metrology import spec

__all__ = ["Harmonic", "Load", "FrontEnd", "AS_BUILT", "reference_energy", "reference_reactive_power"]

@dataclass(frozen=True)
class Harmonic:
    """A harmonic of a voltage or current, relative to its fundamental."""

    order: int
    fraction: float          #: RMS of the harmonic / RMS of the fundamental
    phase_deg: float = 0.0   #: phase at t = 0 (the voltage fundamental's zero), degrees


@dataclass(frozen=True)
class Load:
    """Steady-state voltage and current of one phase.

    ``phase_deg`` is the angle by which the current's fundamental lags the
    voltage's: 60 is PF 0.5 inductive, -36.87 is PF 0.8 capacitive.
    """

    voltage_rms: float                      #: V, fundamental
    current_rms: float                      #: A, fundamental
    phase_deg: float = 0.0
    frequency_hz: float = 50.0
    voltage_harmonics: tuple[Harmonic, ...] = ()
    current_harmonics: tuple[Harmonic, ...] = ()

    @classmethod
    def from_json(cls, document: dict) -> "Load":
        """A load from its JSON form: the field names of this class, harmonics as
        lists of ``{"order", "fraction", "phase_deg"}``; unknown keys are refused."""
        if not isinstance(document, dict):
            raise ValueError("A load is a JSON object")
        known = {"voltage_rms", "current_rms", "phase_deg", "frequency_hz",
                 "voltage_harmonics", "current_harmonics"}
        unknown = set(document) - known
        if unknown:
            raise ValueError(f"Unknown load field(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        try:
            fields = {key: float(value) for key, value in document.items() if not key.endswith("harmonics")}
            for key in ("voltage_harmonics", "current_harmonics"):
                fields[key] = tuple(Harmonic(int(h["order"]), float(h["fraction"]), float(h.get("phase_deg", 0)))
                                    for h in document.get(key, ()))
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(f"Malformed load: {error!r}") from None
        return cls(**fields)

    def __post_init__(self) -> None:
        if self.voltage_rms < 0 or self.current_rms < 0:
            raise ValueError("RMS voltage and current cannot be negative")
        if not 40 <= self.frequency_hz <= 70:
            raise ValueError(f"Line frequency {self.frequency_hz} Hz is outside 40..70 Hz")
        for harmonic in self.voltage_harmonics + self.current_harmonics:
            if harmonic.order < 2 or harmonic.fraction < 0:
                raise ValueError(f"Harmonic {harmonic} needs an order of 2 or more and a "
                                 f"non-negative fraction")

    @property
    def true_rms(self) -> tuple[float, float]:
        """(voltage, current) RMS with harmonics, V and A."""
        return tuple(math.sqrt(sum(amplitude ** 2 / 2 for _, amplitude, _ in components))
                     for components in self.components())

    def components(self) -> tuple[list[tuple[int, float, float]], list[tuple[int, float, float]]]:
        """(order, peak amplitude, phase in rad) of every voltage and current component."""
        voltage = [(1, self.voltage_rms * math.sqrt(2), 0.0)]
        voltage += [(h.order, h.fraction * self.voltage_rms * math.sqrt(2), math.radians(h.phase_deg))
                    for h in self.voltage_harmonics]
        current = [(1, self.current_rms * math.sqrt(2), -math.radians(self.phase_deg))]
        current += [(h.order, h.fraction * self.current_rms * math.sqrt(2), math.radians(h.phase_deg))
                    for h in self.current_harmonics]
        return voltage, current


def reference_energy(load: Load, start_s: float, duration_s: float) -> float:
    """J: the integral of v(t) * i(t) over [start, start + duration], in closed form."""
    omega = 2 * math.pi * load.frequency_hz
    end_s = start_s + duration_s
    total = 0.0
    voltage, current = load.components()
    for h, a, alpha in voltage:
        for k, b, beta in current:
            # a cos(h w t + alpha) * b cos(k w t + beta) = ab/2 [cos(d) + cos(s)]
            for order, angle in ((h - k, alpha - beta), (h + k, alpha + beta)):
                if order == 0:
                    total += a * b / 2 * math.cos(angle) * duration_s
                else:
                    w = order * omega
                    total += a * b / 2 * (math.sin(w * end_s + angle) - math.sin(w * start_s + angle)) / w
    return total


def reference_reactive_power(load: Load) -> float:
    """Fundamental reactive power Q1 (IEEE 1459), var: V1 I1 sin of the angle by
    which the current's fundamental lags the voltage's."""
    (_, v1, voltage_phase), (_, i1, current_phase) = (
        next(component for component in components if component[0] == 1)
        for components in load.components())
    return v1 * i1 / 2 * math.sin(voltage_phase - current_phase)


@dataclass(frozen=True)
class FrontEnd:
    """Sensors and ADC of one phase.

    Full scales are the peak input, in V and A, that gives the largest code.
    """

    voltage_full_scale: float = spec.VOLTAGE_FULL_SCALE_V  #: V peak
    current_full_scale: float = spec.CURRENT_FULL_SCALE_A  #: A peak
    #: The ADC's rate, from a crystal 23 ppm fast: not locked to the line.
    sample_rate_hz: float = spec.SAMPLE_RATE_HZ * (1 + 23e-6)
    snr_db: float = 101.0                   #: full-scale sine to noise
    voltage_offset_codes: float = 0.0
    current_offset_codes: float = 0.0
    voltage_gain_error: float = 0.0         #: relative, e.g. 0.002 reads 0.2 % high
    current_gain_error: float = 0.0
    skew_samples: float = 0.0               #: current sampled this many samples after voltage

    @property
    def noise_rms_codes(self) -> float:
        return spec.SAMPLE_MAX / math.sqrt(2) / 10 ** (self.snr_db / 20)

    def sample(self, load: Load, count: int, rng: np.random.Generator,
               start_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``count`` voltage and current codes from ``start_s`` on (int64 arrays)."""
        voltages, currents, _ = self.sample_phases((load,), count, rng, start_s)
        return voltages[0], currents[0]

    def sample_phases(self, loads: "tuple[Load, ...]", count: int, rng: np.random.Generator,
                      start_s: float = 0.0, *, neutral: bool = False
                      ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """``count`` codes of every phase's voltage and current from ``start_s`` on,
        and with ``neutral`` the neutral current's (the sum of the phase currents),
        all converted by one front end like this one (int64 arrays).

        Phase k lags phase 0 by k/N of a cycle (a rotating N-phase system: 120 degrees
        apart for three), every harmonic with it, so triplen harmonics add up in the
        neutral. The phases share one line frequency.
        """
        if len({load.frequency_hz for load in loads}) != 1:
            raise ValueError("Every phase of a meter's supply has the same line frequency")
        times = start_s + np.arange(count) / self.sample_rate_hz
        skew_s = self.skew_samples / self.sample_rate_hz
        omega = 2 * math.pi * loads[0].frequency_hz

        def waveform(components, instants):
            signal = np.zeros(count)
            for order, amplitude, phase in components:
                signal += amplitude * np.cos(order * omega * instants + phase)
            return signal

        def convert(signal, full_scale, gain_error, offset):
            codes = signal * (spec.SAMPLE_MAX / full_scale) * (1 + gain_error) + offset
            codes += rng.normal(0.0, self.noise_rms_codes, count)
            return np.clip(np.round(codes), -spec.SAMPLE_MAX - 1, spec.SAMPLE_MAX).astype(np.int64)

        voltages, currents, neutral_current = [], [], np.zeros(count)
        for index, load in enumerate(loads):
            delay_s = index / len(loads) / load.frequency_hz
            voltage_components, current_components = load.components()
            current = waveform(current_components, times + skew_s - delay_s)
            neutral_current += current
            voltages.append(convert(waveform(voltage_components, times - delay_s),
                                    self.voltage_full_scale, self.voltage_gain_error,
                                    self.voltage_offset_codes))
            currents.append(convert(current, self.current_full_scale, self.current_gain_error,
                                    self.current_offset_codes))
        return voltages, currents, (convert(neutral_current, self.current_full_scale,
                                            self.current_gain_error, self.current_offset_codes)
                                    if neutral else None)


#: A front end as built, before calibration: the gain, offset and skew errors a
#: factory calibration has to remove (benchmarks, tests, `refmeter sim --uncalibrated`).
AS_BUILT = FrontEnd(voltage_offset_codes=2000, current_offset_codes=-1500,
                    voltage_gain_error=0.003, current_gain_error=-0.005, skew_samples=0.3)
