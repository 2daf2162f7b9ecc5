"""The authorities that hold a key slot in the meter, in slot order.

A register that takes authenticated writes names the authorities whose commands
may write it (:class:`refmeter.gateware.registers.Guard`); the security unit holds
one AES-128 key and one invocation counter per authority.
"""

import enum

__all__ = ["Authority"]


class Authority(enum.IntEnum):
    """Who signs a command, and whose key slot verifies it."""

    SUPPLIER = 0   #: the energy supplier's head-end
    BROKER = 1     #: the access-control broker (the DCC in GB)
    NETWORK = 2    #: the network operator
    READING = 3    #: the meter's own reading key: it seals readings with it
    LOCAL = 4      #: the control module on the meter's board, or a test bench

    @property
    def slot_name(self) -> str:
        """``supplier``, ``broker`` ...: the suffix of the slot's registers."""
        return self.name.lower()
