"""The meter's total energy registers: the algebraic sum of its phases.

A polyphase meter's totals (OBIS ``1-0:1.8.0``, "ΣLi") count the energy of the
sum of the phase powers, so a phase exporting what another imports adds nothing to
either total. Every phase counts its own quanta (1 Wh, 1 varh) and keeps the
remainder as its signed fraction; the totals net those quanta. A *balance* holds
the net quanta the totals have not yet counted: a total counts a quantum only once
the balance reaches the number of phases N, because the phases' fractions
together may hold up to N - 1 quanta of the other sign. So opposing flows of equal
size never count in both totals, and nothing is lost: at every instant

    total import - total export + balance = sum over phases of (import - export)

(modulo 2**32). The price is a lag: a total trails the net energy by at most
2N - 1 quanta (5 Wh on three phases; none on one phase, where the totals are the
phase's registers exactly).
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..registers import Access, Field, Register, register_ports
from .spec import COUNTER_WIDTH

__all__ = ["EnergyTotals"]


class EnergyTotals(wiring.Component):
    """Net active and reactive energy quanta of ``phases`` phases.

    Attributes
    ----------
    active_imported, active_exported : Signal(phases), in
        A bit per phase that pulses with each +A or -A quantum the phase counts.
    reactive_imported, reactive_exported : Signal(phases), in
        Likewise for +R (quadrants I and II) and -R (III and IV) quanta.
    import_wh, export_wh : Signal(32), out
        The running active totals (equal to their registers), for the load profile
        and sealed snapshots.

    Besides these it has one port per register of :attr:`registers`.
    """

    REGISTERS = (
        Register.number("active_import_wh_total", Access.RO, COUNTER_WIDTH,
                        "+A of all phases together: quanta (Wh) of net import (wraps)"),
        Register.number("active_export_wh_total", Access.RO, COUNTER_WIDTH,
                        "-A of all phases together: quanta (Wh) of net export (wraps)"),
        Register.number("reactive_import_varh_total", Access.RO, COUNTER_WIDTH,
                        "+R of all phases together: quanta (varh) of net lagging reactive "
                        "energy (wraps)"),
        Register.number("reactive_export_varh_total", Access.RO, COUNTER_WIDTH,
                        "-R of all phases together: quanta (varh) of net leading reactive "
                        "energy (wraps)"),
        Register("total_balance", Access.RO, (
            Field("active", 8, "net phase quanta (Wh) not yet counted in a total", signed=True),
            Field("reactive", 8, "net phase quanta (varh) not yet counted in a total",
                  signed=True),
        ), "what the totals hold back while the phases' fractions could still cancel it"),
    )

    def __init__(self, *, phases: int):
        if not isinstance(phases, int) or isinstance(phases, bool) or phases < 1:
            raise ValueError(f"Totals need one or more phases, not {phases!r}")
        self._phases = phases
        self.registers = self.REGISTERS
        super().__init__({
            "active_imported": In(phases),
            "active_exported": In(phases),
            "reactive_imported": In(phases),
            "reactive_exported": In(phases),
            "import_wh": Out(COUNTER_WIDTH),
            "export_wh": Out(COUNTER_WIDTH),
            **register_ports(self.registers),
        })

    def elaborate(self, platform):
        m = Module()
        phases = self._phases
        for increments, decrements, imported, exported, balance_field in (
                (self.active_imported, self.active_exported, self.active_import_wh_total,
                 self.active_export_wh_total, self.total_balance.active),
                (self.reactive_imported, self.reactive_exported, self.reactive_import_varh_total,
                 self.reactive_export_varh_total, self.total_balance.reactive)):
            # Quanta arrive at most once per phase per sample set, thousands of cycles
            # apart, so counting one per cycle keeps the balance within +-(2N - 1).
            balance = Signal(signed(balance_field.shape().width))
            counted_import = Signal(COUNTER_WIDTH)
            counted_export = Signal(COUNTER_WIDTH)
            offered = Signal.like(balance)
            m.d.comb += offered.eq(balance + sum(increments) - sum(decrements))
            with m.If(offered >= phases):
                m.d.sync += [counted_import.eq(counted_import + 1), balance.eq(offered - 1)]
            with m.Elif(offered <= -phases):
                m.d.sync += [counted_export.eq(counted_export + 1), balance.eq(offered + 1)]
            with m.Else():
                m.d.sync += balance.eq(offered)
            m.d.comb += [imported.value.eq(counted_import), exported.value.eq(counted_export),
                         balance_field.eq(balance)]
        m.d.comb += [self.import_wh.eq(self.active_import_wh_total.value),
                     self.export_wh.eq(self.active_export_wh_total.value)]
        return m
