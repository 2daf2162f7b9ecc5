"""AES-128 for the meter: the block cipher engine and the GCM mode behind security suite 0.

:class:`~.core.Aes128` encrypts (and optionally decrypts) one 128-bit block per
request on Amaranth streams. Its parameters trade size for speed: a 32-bit
``"column"`` datapath with shared S-boxes, or a ``"round"``-per-cycle datapath;
S-boxes in RAM blocks or in logic; decryption only when a mode needs it (RFC 3394
key unwrap). :mod:`.sbox` holds the S-box tables and the logic S-box circuit.
:class:`~.ghash.Ghash` multiplies in GF(2^128) a digit of bits per cycle, and
:class:`~.gcm.AesGcm` pairs the two into AES-GCM and GMAC with tags produced or
verified; :class:`~.serial.SerialAesGcm` does the same a byte at a time, with its
working values in block RAM, for the smallest FPGAs. ``benchmarks/aes.py`` measures them on the iCE40 UP5K and ECP5;
``docs/aes.md`` describes the design.
"""

from .core import Aes128, cycles_per_block, request_layout
from .gcm import (AesGcm, ELEMENT_LAYOUT, LENGTH_BITS, MESSAGE_LAYOUT, RESULT_LAYOUT,
                  gcm_cycles_per_block)
from .ghash import DIGITS, Ghash, ghash_cycles_per_block
from .serial import SerialAesGcm, serial_gcm_cycles

__all__ = ["Aes128", "cycles_per_block", "request_layout",
           "Ghash", "DIGITS", "ghash_cycles_per_block",
           "AesGcm", "MESSAGE_LAYOUT", "ELEMENT_LAYOUT", "RESULT_LAYOUT", "LENGTH_BITS",
           "gcm_cycles_per_block", "SerialAesGcm", "serial_gcm_cycles"]
