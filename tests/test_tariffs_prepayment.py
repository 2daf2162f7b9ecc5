"""Prepayment: hand-worked cases of each rule, and the disablement property (Hypothesis)."""

import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from refmeter.soft.tariffs.prepayment import (CreditAccount, DebtRecovery, FriendlyCredit,
                                              PrepaymentAccount, PrepaymentSettings, SupplyState)

UTC = datetime.timezone.utc
# Wednesday 14 January 2026, 12:00 GMT: a weekday afternoon, outside friendly credit.
WEDNESDAY_NOON = datetime.datetime(2026, 1, 14, 12, tzinfo=UTC)


class RecordingSwitch:
    """The supply side, recording what it was asked."""

    def __init__(self):
        self.calls: list[str] = []

    def request_local_disconnect(self, reason: str) -> None:
        self.calls.append("disconnect")

    def allow_reconnection(self) -> None:
        self.calls.append("allow reconnection")

    @property
    def disconnect_requested(self) -> bool:
        return bool(self.calls) and self.calls[-1] == "disconnect"


def account(balance=0, debt=0, **settings) -> tuple[PrepaymentAccount, RecordingSwitch]:
    switch = RecordingSwitch()
    return PrepaymentAccount(PrepaymentSettings(**settings), switch, now=WEDNESDAY_NOON,
                             balance=Decimal(balance), debt=Decimal(debt)), switch


def test_credit_exhausted_on_a_weekday_afternoon_disconnects():
    prepay, switch = account(balance=100)
    prepay.charge(Decimal(60), WEDNESDAY_NOON)
    assert switch.calls == []
    prepay.charge(Decimal(40), WEDNESDAY_NOON)          # exactly at the threshold (0 p)
    assert switch.calls == ["disconnect"] and prepay.state is SupplyState.DISABLED


def test_no_disconnect_at_night_until_the_night_ends():
    prepay, switch = account(balance=10)
    evening = datetime.datetime(2026, 1, 14, 19, tzinfo=UTC)       # 19:00 GMT: friendly
    prepay.charge(Decimal(500), evening)
    assert switch.calls == [] and prepay.balance == -490
    prepay.tick(datetime.datetime(2026, 1, 15, 7, 59, tzinfo=UTC))   # still night
    assert switch.calls == []
    prepay.tick(datetime.datetime(2026, 1, 15, 8, 0, tzinfo=UTC))    # the night is over
    assert switch.calls == ["disconnect"]


def test_nights_follow_local_time_in_summer():
    # 07:30 UTC on 1 July is 08:30 BST: the night (to 08:00 local) is over.
    friendly = FriendlyCredit()
    assert not friendly.covers(datetime.datetime(2026, 7, 1, 7, 30, tzinfo=UTC))
    assert friendly.covers(datetime.datetime(2026, 7, 1, 6, 30, tzinfo=UTC))


def test_weekends_and_listed_holidays_are_friendly():
    boxing_day = datetime.date(2029, 12, 26)  # a Wednesday
    friendly = FriendlyCredit(holidays=frozenset({boxing_day}))
    assert friendly.covers(datetime.datetime(2026, 1, 17, 12, tzinfo=UTC))       # Saturday
    assert friendly.covers(datetime.datetime(2029, 12, 26, 12, tzinfo=UTC))
    assert not friendly.covers(datetime.datetime(2029, 12, 27, 12, tzinfo=UTC))


def test_emergency_credit_keeps_supply_on_and_is_repaid_first():
    # Balance 50 p (< 100 p threshold): take £5 emergency credit, use 350 p -> -300 p.
    # Top up 1000 p with half of each payment to a 2000 p debt: 300 p repays the
    # emergency credit first; of the remaining 700 p, 350 p goes to the debt.
    prepay, switch = account(balance=50, debt=2000,
                             debt_recovery=DebtRecovery(share=Decimal("0.5"), cap_per_week=Decimal(1000)))
    prepay.take_emergency_credit(WEDNESDAY_NOON)
    prepay.charge(Decimal(350), WEDNESDAY_NOON)
    assert prepay.balance == -300 and prepay.available == 200 and switch.calls == []
    prepay.top_up(Decimal(1000), WEDNESDAY_NOON)
    assert (prepay.balance, prepay.debt, prepay.emergency_credit_in_use) == (350, 1650, False)


def test_emergency_credit_only_below_its_threshold():
    prepay, _ = account(balance=150)
    with pytest.raises(ValueError, match="emergency credit is available below 100 p of credit; the balance is 150 p"):
        prepay.take_emergency_credit(WEDNESDAY_NOON)
    assert not prepay.emergency_credit_in_use


def test_time_based_debt_recovery_stops_at_the_weekly_cap():
    # 100 p a day, capped at 500 p a week: Thursday 15 to Sunday 18 January is 4 days
    # (400 p) of ISO week 3; Monday 19 to Wednesday 21 (300 p) are week 4.
    prepay, _ = account(balance=5000, debt=10000,
                        debt_recovery=DebtRecovery(per_day=Decimal(100), cap_per_week=Decimal(500)))
    prepay.tick(datetime.datetime(2026, 1, 21, 12, tzinfo=UTC))
    assert prepay.debt == 10000 - 700
    # A top-up's share in week 4 is capped by what is left of that week's 500 p: 200 p.
    prepay = account(balance=5000, debt=10000,
                     debt_recovery=DebtRecovery(per_day=Decimal(100), share=Decimal(1),
                                                cap_per_week=Decimal(500)))[0]
    prepay.tick(datetime.datetime(2026, 1, 21, 12, tzinfo=UTC))
    prepay.top_up(Decimal(1000), datetime.datetime(2026, 1, 21, 12, tzinfo=UTC))
    assert prepay.debt == 10000 - 700 - 200 and prepay.balance == 5000 - 700 + 800


def test_top_up_allows_reconnection_by_the_consumer():
    prepay, switch = account(balance=10)
    prepay.charge(Decimal(20), WEDNESDAY_NOON)
    prepay.top_up(Decimal(5), WEDNESDAY_NOON)               # still exhausted: -5 p
    assert switch.calls == ["disconnect"]
    with pytest.raises(ValueError, match="supply is disabled, not ready for reconnection"):
        prepay.consumer_reconnected(WEDNESDAY_NOON)
    prepay.top_up(Decimal(1000), WEDNESDAY_NOON)
    assert switch.calls == ["disconnect", "allow reconnection"]
    prepay.consumer_reconnected(WEDNESDAY_NOON)
    assert prepay.state is SupplyState.ENABLED and prepay.balance == 995


def test_refusals_change_nothing():
    prepay, switch = account(balance=100)
    for action, message in ((lambda: prepay.charge(Decimal(-1), WEDNESDAY_NOON), "charge -1 p is negative"),
                            (lambda: prepay.top_up(Decimal(0), WEDNESDAY_NOON), "top-up 0 p is not positive")):
        with pytest.raises(ValueError, match=message):
            action()
    assert prepay.balance == 100 and switch.calls == []
    with pytest.raises(ValueError, match="share 0 to 1"):
        DebtRecovery(share=Decimal("1.5"))
    with pytest.raises(ValueError, match="weekdays \\[7\\]: 0 \\(Monday\\) to 6"):
        FriendlyCredit(weekdays=frozenset({7}))


def test_credit_mode_balance_is_payments_less_bills():
    credit = CreditAccount()
    credit.pay(Decimal(5000), WEDNESDAY_NOON)
    credit.bill(Decimal("1234.5678"), WEDNESDAY_NOON, "January")
    assert credit.balance == Decimal("3765.4322")


# --- The disablement property ----------------------------------------------------------------

actions = st.lists(st.tuples(
    st.sampled_from(["charge", "top up", "emergency credit", "reconnect"]),
    st.integers(0, 2000),                   # pence
    st.integers(0, 9 * 60)),                # minutes since the previous action
    max_size=60)


@settings(max_examples=300, deadline=None)
@given(actions=actions, start_hours=st.integers(0, 24 * 365), balance=st.integers(-500, 2000),
       debt=st.integers(0, 5000), threshold=st.integers(-200, 200))
def test_balance_never_below_threshold_outside_friendly_credit_without_a_disconnect(
        actions, start_hours, balance, debt, threshold):
    settings_ = PrepaymentSettings(disablement_threshold=Decimal(threshold),
                                   debt_recovery=DebtRecovery(per_day=Decimal(50), share=Decimal("0.25"),
                                                              cap_per_week=Decimal(300)),
                                   friendly_credit=FriendlyCredit(holidays=frozenset({datetime.date(2026, 12, 25)})))
    switch = RecordingSwitch()
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC) + datetime.timedelta(hours=start_hours)
    prepay = PrepaymentAccount(settings_, switch, now=now, balance=Decimal(balance), debt=Decimal(debt))
    for action, pence, minutes in actions:
        now += datetime.timedelta(minutes=minutes)
        prepay.tick(now)  # the meter's host tells the account the time as it passes
        try:
            {"charge": lambda: prepay.charge(Decimal(pence), now),
             "top up": lambda: prepay.top_up(Decimal(pence + 1), now),
             "emergency credit": lambda: prepay.take_emergency_credit(now),
             "reconnect": lambda: prepay.consumer_reconnected(now)}[action]()
        except ValueError:
            pass  # a refused action (no emergency credit to take, nothing to reconnect)
        if prepay.available <= threshold and not settings_.friendly_credit.covers(now):
            assert switch.disconnect_requested and prepay.state is SupplyState.DISABLED
        assert prepay.debt >= 0
