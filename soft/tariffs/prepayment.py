"""Prepayment in money, and credit mode.

:class:`PrepaymentAccount` keeps the balance (pence, exact) and drives the supply
through a :class:`SupplySwitch`, which the meter wires to its load-switch interlock
(``Action.LOCAL_DISCONNECT``, the control module's prepayment disablement; see
``docs/interlock.md``). Its rules:

* **Disablement.** When the credit available (balance, plus the emergency credit
  limit while emergency credit is in use) falls to or below the disablement
  threshold, the account asks for a local disconnect, except during friendly-credit
  periods: nights, weekends and listed holidays in local time, when nobody should be
  cut off and the balance may go on falling. When such a period ends with the
  credit still exhausted, the disconnect is asked for then.
* **Emergency credit.** Once the balance is below the emergency-credit threshold the
  consumer may take emergency credit, up to its limit. A negative balance (emergency
  or friendly credit used) is repaid first from the next top-up.
* **Debt recovery.** A debt owed to the supplier is recovered at so much a local day
  (time-based) and as a share of each top-up after any negative balance is repaid
  (payment-based); together never more than the cap in any local week (Monday to
  Sunday).
* **Reconnection.** A top-up that leaves credit above the threshold allows
  reconnection; the consumer then reconnects at the meter (the interlock's arming
  rule: the supplier never switches the load back on by itself).

Top-up codes (:class:`TopUpCodes`) are single use: each carries a counter, and a
code's counter is recorded as spent on disk before its money is credited.
"""

import datetime
import enum
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from .auth import AuthenticationError, HmacSha256Verifier, Verifier
from .calendar import LocalClock
from .store import JsonStore

__all__ = ["SupplySwitch", "FriendlyCredit", "DebtRecovery", "PrepaymentSettings", "SupplyState",
           "PrepaymentAccount", "TopUpCodes", "make_top_up_code", "CreditAccount"]


class SupplySwitch(Protocol):
    """The supply side: the meter's load-switch interlock."""

    def request_local_disconnect(self, reason: str) -> None:
        """Disconnect the load for lack of credit (the interlock's ``LOCAL_DISCONNECT``)."""

    def allow_reconnection(self) -> None:
        """Let the consumer reconnect the load at the meter."""


@dataclass(frozen=True)
class FriendlyCredit:
    """When supply is never disabled for lack of credit, in local time: each night
    from ``night_start`` to ``night_end``, on ``weekdays`` (0 = Monday) and on
    ``holidays``, all day."""

    zone: str = "Europe/London"
    night_start: datetime.time = datetime.time(18)
    night_end: datetime.time = datetime.time(8)
    weekdays: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[datetime.date] = frozenset()

    def __post_init__(self) -> None:
        zoneinfo.ZoneInfo(self.zone)  # an unknown zone is refused here, not at midnight
        if not self.weekdays <= set(range(7)):
            raise ValueError(f"friendly-credit weekdays {sorted(self.weekdays)}: 0 (Monday) to 6")

    def covers(self, instant: datetime.datetime) -> bool:
        """Whether an (aware) instant falls in a friendly-credit period."""
        local = LocalClock(self.zone).local(instant)
        time = local.time()
        if self.night_start > self.night_end:
            night = time >= self.night_start or time < self.night_end
        else:
            night = self.night_start <= time < self.night_end
        return night or local.weekday() in self.weekdays or local.date() in self.holidays


@dataclass(frozen=True)
class DebtRecovery:
    """Recovery of a debt: ``per_day`` p each local day, ``share`` (0 to 1) of each
    top-up, together at most ``cap_per_week`` p in a local week."""

    per_day: Decimal = Decimal(0)
    share: Decimal = Decimal(0)
    cap_per_week: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.per_day < 0 or self.cap_per_week < 0 or not 0 <= self.share <= 1:
            raise ValueError(f"debt recovery {self.per_day} p/day, share {self.share}, cap "
                             f"{self.cap_per_week} p/week: rates not negative, share 0 to 1")


@dataclass(frozen=True)
class PrepaymentSettings:
    """Amounts in pence."""

    disablement_threshold: Decimal = Decimal(0)
    emergency_credit_limit: Decimal = Decimal(500)
    emergency_credit_threshold: Decimal = Decimal(100)
    friendly_credit: FriendlyCredit = field(default_factory=FriendlyCredit)
    debt_recovery: DebtRecovery = field(default_factory=DebtRecovery)

    def __post_init__(self) -> None:
        if self.emergency_credit_limit < 0:
            raise ValueError(f"emergency credit limit {self.emergency_credit_limit} p is negative")


class SupplyState(enum.Enum):
    ENABLED = "enabled"
    DISABLED = "disabled"                   #: disconnected for lack of credit
    READY_FOR_RECONNECTION = "ready for reconnection"


class PrepaymentAccount:
    """A prepayment meter's money: see the module docstring for the rules."""

    def __init__(self, settings: PrepaymentSettings, switch: SupplySwitch, *, now: datetime.datetime,
                 balance: Decimal = Decimal(0), debt: Decimal = Decimal(0)):
        if debt < 0:
            raise ValueError(f"debt {debt} p is negative")
        self.settings = settings
        self._switch = switch
        self.balance = Decimal(balance)
        self.debt = Decimal(debt)
        self.emergency_credit_in_use = False
        self.state = SupplyState.ENABLED
        self._clock = LocalClock(settings.friendly_credit.zone)
        self._recovered_by_week: dict[tuple[int, int], Decimal] = {}
        self._last_recovery_day = self._clock.local(now).date()
        self._evaluate(now)

    @property
    def available(self) -> Decimal:
        """Credit the consumer can still use, p."""
        extra = self.settings.emergency_credit_limit if self.emergency_credit_in_use else 0
        return self.balance + extra

    def charge(self, amount: Decimal, at: datetime.datetime) -> None:
        """Take a charge (energy, standing charge) from the balance."""
        if amount < 0:
            raise ValueError(f"charge {amount} p is negative")
        self.balance -= amount
        self._evaluate(at)

    def top_up(self, amount: Decimal, at: datetime.datetime) -> None:
        """Add money: a negative balance is repaid first, then the debt takes its share."""
        if amount <= 0:
            raise ValueError(f"top-up {amount} p is not positive")
        repaid = min(amount, max(-self.balance, Decimal(0)))
        remainder = amount - repaid
        recovered = self._recover(remainder * self.settings.debt_recovery.share, at)
        self.balance += amount - recovered
        if self.balance >= 0:
            self.emergency_credit_in_use = False
        self._evaluate(at)

    def take_emergency_credit(self, at: datetime.datetime) -> None:
        """The consumer takes emergency credit (refused unless the balance is low)."""
        if self.emergency_credit_in_use:
            raise ValueError("emergency credit is already in use")
        if self.balance >= self.settings.emergency_credit_threshold:
            raise ValueError(f"emergency credit is available below {self.settings.emergency_credit_threshold} p "
                             f"of credit; the balance is {self.balance} p")
        self.emergency_credit_in_use = True
        self._evaluate(at)

    def consumer_reconnected(self, at: datetime.datetime) -> None:
        """The consumer switched the load back on at the meter."""
        if self.state is not SupplyState.READY_FOR_RECONNECTION:
            raise ValueError(f"supply is {self.state.value}, not ready for reconnection")
        self.state = SupplyState.ENABLED
        self._evaluate(at)

    def tick(self, now: datetime.datetime) -> None:
        """Let time pass: time-based debt recovery for each local day begun since the
        last tick, and disablement if a friendly-credit period has ended."""
        today = self._clock.local(now).date()
        while self._last_recovery_day < today:
            self._last_recovery_day += datetime.timedelta(days=1)
            noon = datetime.datetime.combine(self._last_recovery_day, datetime.time(12))
            self.balance -= self._recover(self.settings.debt_recovery.per_day,
                                          noon.replace(tzinfo=zoneinfo.ZoneInfo(self._clock.zone)))
        self._evaluate(now)

    def _recover(self, wanted: Decimal, at: datetime.datetime) -> Decimal:
        """Take up to ``wanted`` p off the debt within this week's cap; what was taken."""
        week = tuple(self._clock.local(at).isocalendar())[:2]
        room = self.settings.debt_recovery.cap_per_week - self._recovered_by_week.get(week, Decimal(0))
        recovered = max(Decimal(0), min(wanted, self.debt, room))
        self._recovered_by_week[week] = self._recovered_by_week.get(week, Decimal(0)) + recovered
        self.debt -= recovered
        return recovered

    def _evaluate(self, at: datetime.datetime) -> None:
        exhausted = self.available <= self.settings.disablement_threshold
        # Ready for reconnection but exhausted again (standing charges, debt recovery):
        # the arming is withdrawn, as the interlock's LOCAL_DISCONNECT does.
        if (self.state is not SupplyState.DISABLED and exhausted
                and not self.settings.friendly_credit.covers(at)):
            self.state = SupplyState.DISABLED
            self._switch.request_local_disconnect(
                f"prepayment credit exhausted: {self.available} p available, threshold "
                f"{self.settings.disablement_threshold} p")
        elif self.state is SupplyState.DISABLED and not exhausted:
            self.state = SupplyState.READY_FOR_RECONNECTION
            self._switch.allow_reconnection()


# --- Top-up codes ----------------------------------------------------------------------------

_COUNTER_DIGITS, _AMOUNT_DIGITS = 6, 7


def _code_message(meter_id: str, counter: int, amount_p: int) -> bytes:
    return f"refmeter top-up|{meter_id}|{counter}|{amount_p}".encode()


def _tag_digits(tag_bytes: int) -> int:
    return len(str(256 ** tag_bytes - 1))


def make_top_up_code(tagger: HmacSha256Verifier, meter_id: str, counter: int, amount_p: int) -> str:
    """A top-up code, as the supplier's vending system makes it: the counter, the
    amount in whole pence and the HMAC tag, as digits in groups of four."""
    if not 0 < counter < 10 ** _COUNTER_DIGITS or not 0 < amount_p < 10 ** _AMOUNT_DIGITS:
        raise ValueError(f"counter {counter} or amount {amount_p} p out of range")
    tag = int.from_bytes(tagger.tag(_code_message(meter_id, counter, amount_p)), "big")
    digits = f"{counter:0{_COUNTER_DIGITS}}{amount_p:0{_AMOUNT_DIGITS}}{tag:0{_tag_digits(tagger.tag_bytes)}}"
    return " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))


class TopUpCodes:
    """Redeems top-up codes for one meter: each verified, and used only once, even
    across restarts (spent counters are kept in ``store``)."""

    def __init__(self, verifier: Verifier, store: JsonStore, *, meter_id: str, tag_bytes: int = 5):
        self._verifier = verifier
        self._store = store
        self._meter_id = meter_id
        self._tag_bytes = tag_bytes
        self._spent = set(store.load({"spent": []})["spent"])

    def redeem(self, code: str) -> Decimal:
        """The code's amount, p, once it is verified and recorded as spent."""
        digits = "".join(character for character in code if character not in " -")
        length = _COUNTER_DIGITS + _AMOUNT_DIGITS + _tag_digits(self._tag_bytes)
        if not digits.isdigit() or len(digits) != length:
            raise ValueError(f"a top-up code is {length} digits; this has {len(digits)}"
                             + ("" if digits.isdigit() else " and other characters"))
        counter = int(digits[:_COUNTER_DIGITS])
        amount_p = int(digits[_COUNTER_DIGITS:_COUNTER_DIGITS + _AMOUNT_DIGITS])
        tag = int(digits[_COUNTER_DIGITS + _AMOUNT_DIGITS:])
        if tag >= 256 ** self._tag_bytes:
            raise AuthenticationError("the code's check digits are wrong")
        self._verifier.verify(_code_message(self._meter_id, counter, amount_p),
                              tag.to_bytes(self._tag_bytes, "big"))
        if counter in self._spent:
            raise AuthenticationError(f"top-up code number {counter} was already used")
        self._store.save({"spent": sorted(self._spent | {counter})})
        self._spent.add(counter)
        return Decimal(amount_p)


# --- Credit mode -----------------------------------------------------------------------------

@dataclass
class CreditAccount:
    """Credit mode: the account balance from payments and bills, p (positive: in credit)."""

    entries: list[tuple[datetime.datetime, str, Decimal]] = field(default_factory=list)

    @property
    def balance(self) -> Decimal:
        return sum((amount for _, _, amount in self.entries), Decimal(0))

    def pay(self, amount: Decimal, at: datetime.datetime) -> None:
        if amount <= 0:
            raise ValueError(f"payment {amount} p is not positive")
        self.entries.append((at, "payment", Decimal(amount)))

    def bill(self, total: Decimal, at: datetime.datetime, description: str) -> None:
        """Charge a bill's exact total (``Bill.total``)."""
        self.entries.append((at, description, -Decimal(total)))
