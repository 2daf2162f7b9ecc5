"""Authenticated, versioned updates: tariffs activated atomically at a UTC time, and
calorific values.

An update is a JSON message and a signature over its exact bytes. It is verified by
the injected :class:`~.auth.Verifier` first, then checked (a tariff must validate, a
calorific value must lie in the plausible band), then its version must be newer than
every one accepted before (so a captured update cannot be replayed, nor an old
tariff brought back), and only once the new state is on disk (:class:`~.store.JsonStore`)
does it count. A refused update changes nothing.

Tariff message::

    {"kind": "tariff", "activate_at": "2026-04-01T00:00:00+00:00", "tariff": {... tariff file ...}}

whose tariff's ``version`` is the update's version. Calorific-value message::

    {"kind": "calorific_value", "sequence": 12, "effective": "2026-03-15T05:00:00+00:00",
     "mj_per_m3": "39.6"}
"""

import datetime
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from .auth import AuthenticationError, Verifier
from .gas import CalorificValue, CalorificValueHistory
from .model import Tariff, tariff_from_dict
from .store import JsonStore

__all__ = ["TariffRegister", "CalorificValueRegister"]


def _message(message: bytes, kind: str) -> dict:
    try:
        document = json.loads(message)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"the {kind} update is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("kind") != kind:
        raise ValueError(f"not a {kind} update (kind {document.get('kind') if isinstance(document, dict) else None!r})")
    return document


def _utc(text: Any, what: str) -> datetime.datetime:
    try:
        instant = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {text!r} is not an ISO 8601 time") from None
    if instant.utcoffset() is None:
        raise ValueError(f"{what} {text!r} has no UTC offset")
    return instant.astimezone(datetime.timezone.utc)


class TariffRegister:
    """The active tariff and the pending one, with when it takes over; kept in ``store``."""

    def __init__(self, verifier: Verifier, store: JsonStore):
        self._verifier = verifier
        self._store = store
        self._state = store.load({"active": None, "pending": None, "version": -1})

    @property
    def active(self) -> "Tariff | None":
        """The tariff in force since the last :meth:`advance` (``None`` before any)."""
        active = self._state["active"]
        return None if active is None else tariff_from_dict(active["tariff"])

    @property
    def pending(self) -> "tuple[Tariff, datetime.datetime] | None":
        """The accepted tariff waiting for its activation time, and that time (UTC)."""
        pending = self._state["pending"]
        if pending is None:
            return None
        return tariff_from_dict(pending["tariff"]), _utc(pending["activate_at"], "activation")

    def tariff_at(self, instant: datetime.datetime) -> "Tariff | None":
        """The tariff in force at an instant: the pending one from its activation time on."""
        pending = self.pending
        if pending is not None and instant >= pending[1]:
            return pending[0]
        return self.active

    def advance(self, now: datetime.datetime) -> None:
        """Make the pending tariff the active one if its time has come."""
        pending = self._state["pending"]
        if pending is not None and now >= _utc(pending["activate_at"], "activation"):
            self._save({**self._state, "active": {"tariff": pending["tariff"],
                                                  "activated_at": pending["activate_at"]},
                        "pending": None})

    def receive(self, message: bytes, signature: bytes, *, now: datetime.datetime) -> Tariff:
        """Verify and accept a tariff update, which replaces any pending one."""
        self._verifier.verify(message, signature)
        document = _message(message, "tariff")
        tariff = tariff_from_dict(document["tariff"])
        activate_at = _utc(document.get("activate_at"), "activation time")
        if tariff.version <= self._state["version"]:
            raise AuthenticationError(f"tariff version {tariff.version} is not newer than version "
                                      f"{self._state['version']}, already accepted: a replay or a downgrade")
        if activate_at < now:
            raise ValueError(f"activation time {activate_at.isoformat()} is already past")
        self._save({**self._state, "version": tariff.version,
                    "pending": {"tariff": document["tariff"], "activate_at": activate_at.isoformat()}})
        return tariff

    def _save(self, state: dict) -> None:
        self._store.save(state)
        self._state = state


class CalorificValueRegister:
    """Authenticated calorific values and their whole history, kept in ``store``."""

    def __init__(self, verifier: Verifier, store: JsonStore,
                 history: "CalorificValueHistory | None" = None):
        self._verifier = verifier
        self._store = store
        self._state = store.load({"sequence": -1, "values": []})
        self.history = history or CalorificValueHistory()
        for value in self._state["values"]:
            self.history.add(CalorificValue(_utc(value["effective"], "effective"), Decimal(value["mj_per_m3"]),
                                            _utc(value["received"], "received"), value["source"]))

    def receive(self, message: bytes, signature: bytes, *, now: datetime.datetime,
                source: str = "supplier") -> CalorificValue:
        """Verify, check and record a calorific value."""
        self._verifier.verify(message, signature)
        document = _message(message, "calorific_value")
        sequence = document.get("sequence")
        if not isinstance(sequence, int) or sequence <= self._state["sequence"]:
            raise AuthenticationError(f"calorific value sequence {sequence!r} is not newer than "
                                      f"{self._state['sequence']}: a replay")
        try:
            mj_per_m3 = Decimal(str(document.get("mj_per_m3")))
        except InvalidOperation:
            raise ValueError(f"calorific value {document.get('mj_per_m3')!r} is not a number") from None
        value = CalorificValue(_utc(document.get("effective"), "effective time"), mj_per_m3, now, source)
        self.history.check(value)
        state = {"sequence": sequence, "values": self._state["values"] + [{
            "effective": value.effective.isoformat(), "mj_per_m3": str(value.mj_per_m3),
            "received": now.isoformat(), "source": source}]}
        self._store.save(state)
        self._state = state
        self.history.add(value)
        return value
