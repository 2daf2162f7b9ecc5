"""Metering ADC front ends: the FPGA side of the converter that samples the line.

``ads131m04`` receives the TI ADS131M04 (4 simultaneous 24-bit channels on SPI).
The parts live in submodules; this package imports none of them.
"""
