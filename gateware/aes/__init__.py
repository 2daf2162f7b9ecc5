"""AES-128 for the meter: the block cipher engine behind the security modes.

:class:`~.core.Aes128` encrypts (and optionally decrypts) one 128-bit block per
request on Amaranth streams. Its parameters trade size for speed: a 32-bit
``"column"`` datapath with shared S-boxes, or a ``"round"``-per-cycle datapath;
S-boxes in RAM blocks or in logic; decryption only when a mode needs it (RFC 3394
key unwrap). :mod:`.sbox` holds the S-box tables and the logic S-box circuit.
``benchmarks/aes.py`` measures every configuration on the iCE40 UP5K and ECP5.
"""

from .core import Aes128, cycles_per_block, request_layout

__all__ = ["Aes128", "cycles_per_block", "request_layout"]
