"""Metrology: per-phase fixed-point DSP from ADC samples to power sums and energy.

``spec`` fixes the arithmetic (widths, shifts, saturation) that the gateware
(``phase``) and the bit-exact model (``refmeter.sim.metrology``) both implement.
"""
