"""The host link: UART, request FIFO and frame bridge to the register bus.

The parts live in submodules (``uart``, ``bridge``, ``protocol``, ``link``); this
package imports none of them, so ``protocol`` stays importable by
``refmeter.gateware.registers`` without an import cycle.
"""
