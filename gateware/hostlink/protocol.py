"""The host-link frame format: the single definition both ends use.

Request, host to meter::

    SOF  LEN  CMD  ADDR_HI ADDR_LO  PAYLOAD[LEN]  CRC_HI CRC_LO

Response, meter to host::

    SOF  LEN  CMD  STATUS  ADDR_HI ADDR_LO  PAYLOAD[LEN]  CRC_HI CRC_LO

``LEN`` counts payload bytes only. The response echoes the request's ``CMD`` and
address so a host can tell a late answer from the one it waits for. The CRC is
CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no
final XOR; Python's ``binascii.crc_hqx(data, 0xFFFF)``) over every byte from
``LEN`` to the end of the payload, sent most significant byte first. Multi-byte
fields are big-endian. See ``docs/protocol.md`` for how bad frames are handled.
"""

from amaranth.lib import enum
from amaranth.lib.crc import catalog

__all__ = ["SOF", "MAX_PAYLOAD", "CRC", "Command", "Status",
           "REQUEST_HEADER_SIZE", "RESPONSE_HEADER_SIZE", "CRC_SIZE"]

#: Start-of-frame byte. Any byte may also occur inside a frame; the CRC, the length
#: limit and the idle timeout are what keep a receiver in step.
SOF = 0x5A

#: Largest payload either side sends, in bytes (the widest register today is 8).
MAX_PAYLOAD = 16

#: CRC-16/CCITT-FALSE, from Amaranth's catalogue, shared with the gateware CRC unit.
CRC = catalog.CRC16_CCITT_FALSE

REQUEST_HEADER_SIZE = 5   # SOF LEN CMD ADDR_HI ADDR_LO
RESPONSE_HEADER_SIZE = 6  # SOF LEN CMD STATUS ADDR_HI ADDR_LO
CRC_SIZE = 2


class Command(enum.IntEnum, shape=8):
    """What a request asks for."""

    READ = 0x01   #: read a register; no payload; the response carries its value
    WRITE = 0x02  #: write a register; the payload is its value, exactly its size


class Status(enum.IntEnum, shape=8):
    """How the meter answered a request."""

    OK = 0x00
    BAD_CRC = 0x01      #: the CRC did not match; nothing was done
    BAD_LENGTH = 0x02   #: LEN above MAX_PAYLOAD, or not the register's size
    BAD_COMMAND = 0x03  #: CMD is not a known command
    BAD_ADDRESS = 0x04  #: no register at that address
    READ_ONLY = 0x05    #: write to a read-only register
    WRITE_ONLY = 0x06   #: read of a write-only register
    SEALED = 0x07       #: write to a calibration register or key slot while the seal is closed
    UNAUTHENTICATED = 0x08  #: the register takes only authenticated commands (docs/security.md)
    FORBIDDEN = 0x09    #: an authenticated command from an authority that may not write it
