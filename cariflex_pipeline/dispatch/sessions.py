"""What the CitrineOS bus tells us about EV sessions, and the open sessions for the scheduler.

`SessionBook.apply` turns one decoded station request (TransactionEvent, MeterValues, StatusNotification,
NotifyEVChargingNeeds; validated against the OCPP 2.0.1 schema), or CitrineOS's answer to a NotifyEVChargingNeeds,
into:

- rows of `ev_sessions` (one per station and transaction: arrival, departure, energy requested/delivered,
  with `*_is_default` flags when the EV did not say and configured defaults apply);
- station/EVSE status rows in `ev_station_status`;
- rows of `ev_charging_needs`, one per NotifyEVChargingNeeds exchange (station + correlationId);
- Power.Active.Import samples of the charge point's sensor (61-70), which the consumer averages per slot
  (`meter.power_frame`) and stores as measured power, source "citrineos-meter".

EV charging needs stand only once CitrineOS has accepted them. The station's request (origin cs, state 1) is stored
as "awaiting"; CitrineOS's answer (origin csms, state 2, same correlationId, payload `{"status": ...}`) decides:
Accepted or Processing apply the needs (to the active session on that EVSE, or kept for the next TransactionEvent
Started), Rejected - or a CallError in the answer's place - leaves them unapplied ("rejected", with the reason).
CitrineOS 1.8.3 answers Rejected, without statusInfo, when it knows no active transaction on the EVSE, when the
charging parameters do not match `requestedEnergyTransfer`, or when it cannot compute a profile (e.g. the profile
in force gives 0 now). An answer whose request has not been seen is kept ("unmatched") and decides the request if
it follows. `unapplied_needs(engine)` lists the needs the scheduler runs without.

The bus side (our queue, dead letters, acks) is `session_consumer.SessionConsumer`. `active_sessions(engine)`
gives the scheduler the open sessions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from sqlalchemy import Engine, Select, Table, and_, insert, or_, select, update

from cariflex_pipeline.dispatch.envelope import BusMessage
from cariflex_pipeline.dispatch.peer_schemas import violations as peer_violations
from cariflex_pipeline.dispatch.tables import ev_charging_needs, ev_sessions, ev_station_status
from cariflex_pipeline.site_model import Portfolio
from cariflex_pipeline.store.schema import NO_SITE
from cariflex_pipeline.store.times import from_db_time, to_db_time

LOG = logging.getLogger(__name__)

FOLLOWED_ACTIONS = ("TransactionEvent", "MeterValues", "StatusNotification", "NotifyEVChargingNeeds")
# station requests whose CitrineOS answer (origin csms, state 2) we follow too: the request stands only if accepted
ANSWERED_ACTIONS = ("NotifyEVChargingNeeds",)
# NotifyEVChargingNeeds answers under which the needs stand (Processing: the CSMS is computing a schedule)
STANDING_ANSWERS = ("Accepted", "Processing")
METER_SOURCE = "citrineos-meter"


class SessionMessageError(ValueError):
    """A station message that cannot be used; the reason goes with it to the dead-letter queue."""


class UnknownStationError(LookupError):
    """A message from a station that no site of the portfolio has (logged and acknowledged, never dead-lettered,
    nothing stored: its site would be NO_SITE, "")."""

    def __init__(self, station_id: str) -> None:
        self.station_id = station_id
        super().__init__(f"station {station_id} is in no site of the portfolio (site {NO_SITE!r})")


@dataclass(frozen=True)
class SessionDefaults:
    """Applied when the EV does not say when it leaves or how much it needs (marked as defaults)."""

    dwell: timedelta = timedelta(hours=8)
    energy_kwh: float = 20.0


@dataclass(frozen=True)
class StationInfo:
    station_id: str
    sensor_id: int
    site_id: str  # the portfolio site of its charge point: every row the station's messages write carries it
    resolution: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SessionChange:
    """A change that should make the scheduler run again."""

    kind: str  # started | ended | needs_changed
    station_id: str
    transaction_id: str
    at: datetime

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.station_id}:{self.transaction_id}:{self.at.isoformat()}"


def needs_answer(payload: dict[str, Any]) -> tuple[str, str]:
    """(answer, reason) of CitrineOS's answer to a NotifyEVChargingNeeds.

    The answer is the payload's status, or "CallError" when CitrineOS put an error in the answer's place (its
    handler failed: the payload is a serialized OcppError with `_errorCode`, sent to the station as a CALLERROR).
    The reason is statusInfo's reasonCode and additionalInfo, or the error's code and message.
    """
    if "_errorCode" in payload:
        return "CallError", f"{payload['_errorCode']}: {payload.get('message') or ''}".rstrip(": ")
    info = payload.get("statusInfo") or {}
    reason = str(info.get("reasonCode") or "")
    if info.get("additionalInfo"):
        reason = f"{reason}: {info['additionalInfo']}" if reason else str(info["additionalInfo"])
    return str(payload.get("status")), reason


@cache
def _request_validator(action: str) -> jsonschema.protocols.Validator:
    text = (resources.files("ocpp") / "v201" / "schemas" / f"{action}Request.json").read_text(encoding="utf-8-sig")
    schema = json.loads(text)
    return jsonschema.validators.validator_for(schema)(schema)


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise SessionMessageError(f"{what}: {value!r} is not a date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SessionMessageError(f"{what}: {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise SessionMessageError(f"{what}: {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _power_samples(meter_values: Iterable[dict[str, Any]]) -> list[tuple[datetime, float]]:
    """(time, kW) of Power.Active.Import samples (phase totals only)."""
    out = []
    for meter_value in meter_values or []:
        at = _parse_time(meter_value.get("timestamp"), "meterValue.timestamp")
        for sample in meter_value.get("sampledValue", []):
            if sample.get("measurand") != "Power.Active.Import" or sample.get("phase"):
                continue
            unit = sample.get("unitOfMeasure") or {}
            multiplier = 10 ** int(unit.get("multiplier", 0))
            scale = 1.0 if unit.get("unit") == "kW" else 0.001  # default unit is W
            out.append((at, float(sample["value"]) * multiplier * scale))
    return out


def _energy_register_wh(meter_values: Iterable[dict[str, Any]]) -> float | None:
    """The latest Energy.Active.Import.Register reading in Wh (the default measurand when none is given)."""
    latest: tuple[datetime, float] | None = None
    for meter_value in meter_values or []:
        at = _parse_time(meter_value.get("timestamp"), "meterValue.timestamp")
        for sample in meter_value.get("sampledValue", []):
            if sample.get("measurand", "Energy.Active.Import.Register") != "Energy.Active.Import.Register":
                continue
            if sample.get("phase"):
                continue
            unit = sample.get("unitOfMeasure") or {}
            multiplier = 10 ** int(unit.get("multiplier", 0))
            scale = 1000.0 if unit.get("unit") == "kWh" else 1.0
            value = float(sample["value"]) * multiplier * scale
            if latest is None or at >= latest[0]:
                latest = (at, value)
    return latest[1] if latest else None


class SessionBook:
    """Applies decoded station messages to the session tables (no broker involved: testable on its own)."""

    def __init__(self, engine: Engine, stations: dict[str, StationInfo],
                 defaults: SessionDefaults | None = None) -> None:
        self.engine = engine
        self.stations = stations
        self.defaults = defaults or SessionDefaults()

    def _t(self, moment: datetime | None) -> datetime | None:
        return to_db_time(self.engine, moment)

    def apply(self, message: BusMessage, now: datetime | None = None
              ) -> tuple[list[SessionChange], list[tuple[int, datetime, float]]]:
        """Apply one message; return session changes and (sensor, time, kW) power samples.

        Raises SessionMessageError for a malformed or unexpected message, UnknownStationError for a station
        that is not in the site model.
        """
        now = now or datetime.now(UTC)
        if message.action not in FOLLOWED_ACTIONS:
            raise SessionMessageError(f"unexpected action {message.action!r} from station {message.station_id}")
        is_answer = message.state == 2 and message.action in ANSWERED_ACTIONS
        if is_answer:
            self._check_answer(message)
        else:
            if message.state != 1:
                raise SessionMessageError(f"station {message.station_id}: unexpected state {message.state} for "
                                          f"{message.action} (expected 1)")
            violations = sorted(_request_validator(message.action).iter_errors(message.payload), key=str)
            if violations:
                first = violations[0]
                path = "/".join(str(p) for p in first.absolute_path) or "payload"
                raise SessionMessageError(f"{message.action} from station {message.station_id} breaks the OCPP "
                                          f"2.0.1 schema at {path}: {first.message}")
        station = self.stations.get(message.station_id)
        if station is None:
            raise UnknownStationError(message.station_id)
        handler: Callable[..., list[SessionChange]] = getattr(
            self, f"_on_{message.action}_answer" if is_answer else f"_on_{message.action}")
        extra = {"correlation_id": message.correlation_id} if message.action in ANSWERED_ACTIONS else {}
        samples: list[tuple[int, datetime, float]] = []
        try:
            with self.engine.begin() as connection:
                changes = handler(connection, station, message.payload, now, samples, **extra)
        except SessionMessageError as error:  # the reason goes to the dead-letter queue: name the station
            text = str(error)
            if f"station {station.station_id}" not in text:
                raise SessionMessageError(f"station {station.station_id}: {text}") from None
            raise
        return changes, samples

    @staticmethod
    def _check_answer(message: BusMessage) -> None:
        """CitrineOS's answer to a station request: origin csms, a correlationId, CitrineOS's response schema."""
        what = f"{message.action} answer for station {message.station_id}"
        if message.origin != "csms":
            raise SessionMessageError(f"station {message.station_id}: unexpected state 2 for {message.action} from "
                                      f"origin {message.origin!r} (expected CitrineOS's answer, origin csms)")
        if not message.correlation_id:
            raise SessionMessageError(f"{what} has no correlationId: it cannot be matched to its request")
        if "_errorCode" in message.payload:  # a CallError in the answer's place: see needs_answer
            return
        violations = peer_violations(message.action, message.payload, "Response")
        if violations:
            raise SessionMessageError(f"{what} breaks the schema: {violations[0]}")

    # --- handlers -----------------------------------------------------------------------------------------
    def _on_TransactionEvent(self, connection: Any, station: StationInfo, payload: dict[str, Any], now: datetime,
                             samples: list) -> list[SessionChange]:
        event_type = payload["eventType"]
        at = _parse_time(payload["timestamp"], "TransactionEvent.timestamp")
        transaction_id = payload["transactionInfo"]["transactionId"]
        evse_id = (payload.get("evse") or {}).get("id", 1)
        meter_values = payload.get("meterValue") or []
        for when, kw in _power_samples(meter_values):
            samples.append((station.sensor_id, when, kw))
        register = _energy_register_wh(meter_values)
        row = connection.execute(select(ev_sessions).where(and_(
            ev_sessions.c.station_id == station.station_id, ev_sessions.c.transaction_id == transaction_id))).first()
        changes: list[SessionChange] = []
        if row is None:
            if event_type == "Ended":
                LOG.warning("station %s: TransactionEvent Ended for unknown transaction %s (recorded as ended)",
                            station.station_id, transaction_id)
            pending = connection.execute(select(ev_station_status).where(and_(
                ev_station_status.c.station_id == station.station_id, ev_station_status.c.evse_id == evse_id))
            ).first()
            departure, departure_default = at + self.defaults.dwell, True
            energy, energy_default = self.defaults.energy_kwh, True
            if pending is not None and pending.pending_departure is not None:
                departure, departure_default = from_db_time(pending.pending_departure), False
            if pending is not None and pending.pending_energy_kwh is not None:
                energy, energy_default = pending.pending_energy_kwh, False
            if pending is not None:
                connection.execute(update(ev_station_status).where(and_(
                    ev_station_status.c.station_id == station.station_id, ev_station_status.c.evse_id == evse_id)
                ).values(pending_departure=None, pending_energy_kwh=None, updated_at=self._t(now)))
            ended = event_type == "Ended"
            if not ended:
                changes += self._close_superseded(connection, station.station_id, evse_id, transaction_id, at, now)
            connection.execute(insert(ev_sessions).values(
                site_id=station.site_id, station_id=station.station_id, transaction_id=transaction_id, evse_id=evse_id,
                status="ended" if ended else "active", arrival=self._t(at), departure=self._t(departure),
                departure_is_default=departure_default, energy_requested_kwh=energy,
                energy_is_default=energy_default, meter_start_wh=register, energy_delivered_kwh=0.0,
                last_power_kw=samples[-1][2] if samples else None, last_seq_no=payload["seqNo"],
                ended_at=self._t(at) if ended else None,
                stopped_reason=payload["transactionInfo"].get("stoppedReason"), updated_at=self._t(now)))
            changes.append(SessionChange("ended" if ended else "started", station.station_id, transaction_id, at))
            return changes
        this_session = and_(ev_sessions.c.station_id == station.station_id,
                            ev_sessions.c.transaction_id == transaction_id)
        metered: dict[str, Any] = {"updated_at": self._t(now), "last_seq_no": payload["seqNo"]}
        if register is not None:
            if row.meter_start_wh is None:
                metered["meter_start_wh"] = register
            else:
                metered["energy_delivered_kwh"] = max(0.0, (register - row.meter_start_wh) / 1000.0)
        if samples:
            metered["last_power_kw"] = samples[-1][2]
        # An older event of the transaction (requeued behind newer ones, or taken by a second consumer) must not
        # put an older meter reading back: the meter columns change only for a higher seqNo (compare-and-set in
        # the UPDATE itself, so two consumers cannot both pass a check made on their own reads).
        connection.execute(update(ev_sessions).where(and_(this_session, or_(
            ev_sessions.c.last_seq_no.is_(None), ev_sessions.c.last_seq_no < payload["seqNo"]))).values(**metered))
        if event_type == "Ended":  # ends the session whatever its seqNo; reported once, by whoever ends it
            ended = connection.execute(update(ev_sessions).where(and_(this_session, ev_sessions.c.status != "ended"))
                                       .values(status="ended", ended_at=self._t(at), updated_at=self._t(now),
                                               stopped_reason=payload["transactionInfo"].get("stoppedReason")))
            if ended.rowcount == 1:
                changes.append(SessionChange("ended", station.station_id, transaction_id, at))
        return changes

    def _close_superseded(self, connection: Any, station_id: str, evse_id: int, transaction_id: str,
                          at: datetime, now: datetime) -> list[SessionChange]:
        """A new transaction on an EVSE ends any older one still open there: its Ended message was lost, and
        two open sessions on one connector would make the schedule plan for a car that left."""
        stale = connection.execute(select(ev_sessions.c.transaction_id).where(and_(
            ev_sessions.c.station_id == station_id, ev_sessions.c.evse_id == evse_id,
            ev_sessions.c.status == "active", ev_sessions.c.transaction_id != transaction_id))).scalars().all()
        for old in stale:
            LOG.warning("station %s EVSE %d: transaction %s started while %s was still open; closing %s "
                        "(its TransactionEvent Ended never arrived)", station_id, evse_id, transaction_id, old, old)
            connection.execute(update(ev_sessions).where(and_(
                ev_sessions.c.station_id == station_id, ev_sessions.c.transaction_id == old)
            ).values(status="ended", ended_at=self._t(at), stopped_reason="SupersededByNewTransaction",
                     updated_at=self._t(now)))
        return [SessionChange("ended", station_id, old, at) for old in stale]

    def _on_MeterValues(self, connection: Any, station: StationInfo, payload: dict[str, Any], now: datetime,
                        samples: list) -> list[SessionChange]:
        meter_values = payload["meterValue"]
        for when, kw in _power_samples(meter_values):
            samples.append((station.sensor_id, when, kw))
        register = _energy_register_wh(meter_values)
        active = connection.execute(select(ev_sessions).where(and_(
            ev_sessions.c.station_id == station.station_id, ev_sessions.c.status == "active",
            ev_sessions.c.evse_id == payload["evseId"]))).first()
        if active is not None and (register is not None or samples):
            values: dict[str, Any] = {"updated_at": self._t(now)}
            if samples:
                values["last_power_kw"] = samples[-1][2]
            if register is not None and active.meter_start_wh is not None:
                values["energy_delivered_kwh"] = max(0.0, (register - active.meter_start_wh) / 1000.0)
            connection.execute(update(ev_sessions).where(and_(
                ev_sessions.c.station_id == station.station_id,
                ev_sessions.c.transaction_id == active.transaction_id)).values(**values))
        return []

    def _on_StatusNotification(self, connection: Any, station: StationInfo, payload: dict[str, Any],
                               now: datetime, samples: list) -> list[SessionChange]:
        at = _parse_time(payload["timestamp"], "StatusNotification.timestamp")
        self._upsert_status(connection, station, payload["evseId"], now,
                            connector_id=payload["connectorId"], connector_status=payload["connectorStatus"],
                            status_at=self._t(at))
        return []

    def _on_NotifyEVChargingNeeds(self, connection: Any, station: StationInfo, payload: dict[str, Any],
                                  now: datetime, samples: list, correlation_id: str | None = None
                                  ) -> list[SessionChange]:
        """The station's needs: stored until CitrineOS answers (or decided now if its answer came first)."""
        needs = payload["chargingNeeds"]
        evse_id = payload["evseId"]
        departure = _parse_time(needs["departureTime"], "chargingNeeds.departureTime") \
            if needs.get("departureTime") else None
        parameters = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
        energy_kwh = parameters["energyAmount"] / 1000.0 if "energyAmount" in parameters else None
        if energy_kwh is not None and energy_kwh < 0:
            raise SessionMessageError(f"station {station.station_id}: negative energyAmount {energy_kwh * 1000} Wh")
        if not correlation_id:
            raise SessionMessageError(f"station {station.station_id}: NotifyEVChargingNeeds without a correlationId "
                                      "cannot be matched to CitrineOS's answer")
        row = self._needs_row(connection, station.station_id, correlation_id)
        values = {"evse_id": evse_id, "departure": self._t(departure), "energy_kwh": energy_kwh,
                  "updated_at": self._t(now)}
        if row is None:
            connection.execute(insert(ev_charging_needs).values(
                site_id=station.site_id, station_id=station.station_id, correlation_id=correlation_id,
                status="awaiting",
                requested_at=self._t(now), **values))
            LOG.info("station %s EVSE %d: EV charging needs %s (departure %s, %s kWh) await CitrineOS's answer",
                     station.station_id, evse_id, correlation_id, departure, energy_kwh)
            return []
        if row.status != "unmatched":  # redelivered: the first delivery is stored (and maybe answered) already
            LOG.info("station %s: NotifyEVChargingNeeds %s seen again (%s): ignored", station.station_id,
                     correlation_id, row.status)
            return []
        # CitrineOS's answer came first: it decides now
        self._update_needs(connection, station.station_id, correlation_id, requested_at=self._t(now), **values)
        return self._decide_needs(connection, station, correlation_id, evse_id, departure, energy_kwh, row.answer,
                                  row.reason, now)

    def _on_NotifyEVChargingNeeds_answer(self, connection: Any, station: StationInfo, payload: dict[str, Any],
                                         now: datetime, samples: list, correlation_id: str | None = None
                                         ) -> list[SessionChange]:
        """CitrineOS's answer: Accepted/Processing apply the stored needs, Rejected/CallError leave them out."""
        assert correlation_id  # checked in _check_answer
        answer, reason = needs_answer(payload)
        row = self._needs_row(connection, station.station_id, correlation_id)
        if row is None:
            connection.execute(insert(ev_charging_needs).values(
                site_id=station.site_id, station_id=station.station_id, correlation_id=correlation_id,
                status="unmatched", answer=answer,
                reason=reason, answered_at=self._t(now), updated_at=self._t(now)))
            LOG.warning("station %s: CitrineOS answered %s to NotifyEVChargingNeeds %s, whose request we have not "
                        "seen; kept in case the request follows", station.station_id, answer, correlation_id)
            return []
        if row.status != "awaiting":  # a redelivered answer, or a second one
            log = LOG.info if row.answer == answer else LOG.warning
            log("station %s: another answer %s to NotifyEVChargingNeeds %s (already %s, answer %s): ignored",
                station.station_id, answer, correlation_id, row.status, row.answer)
            return []
        self._update_needs(connection, station.station_id, correlation_id, answer=answer, reason=reason,
                           answered_at=self._t(now), updated_at=self._t(now))
        return self._decide_needs(connection, station, correlation_id, row.evse_id, from_db_time(row.departure),
                                  row.energy_kwh, answer, reason, now)

    def _needs_row(self, connection: Any, station_id: str, correlation_id: str) -> Any:
        return connection.execute(select(ev_charging_needs).where(and_(
            ev_charging_needs.c.station_id == station_id,
            ev_charging_needs.c.correlation_id == correlation_id))).first()

    def _update_needs(self, connection: Any, station_id: str, correlation_id: str, **values: Any) -> None:
        connection.execute(update(ev_charging_needs).where(and_(
            ev_charging_needs.c.station_id == station_id, ev_charging_needs.c.correlation_id == correlation_id)
        ).values(**values))

    def _decide_needs(self, connection: Any, station: StationInfo, correlation_id: str, evse_id: int,
                      departure: datetime | None, energy_kwh: float | None, answer: str, reason: str,
                      now: datetime) -> list[SessionChange]:
        if answer not in STANDING_ANSWERS:
            self._update_needs(connection, station.station_id, correlation_id, status="rejected",
                               updated_at=self._t(now))
            LOG.warning("station %s EVSE %d: CitrineOS answered %s to NotifyEVChargingNeeds %s (%s): needs not "
                        "applied (departure %s, %s kWh)", station.station_id, evse_id, answer, correlation_id,
                        reason or "no reason given", departure, energy_kwh)
            return []
        changes, transaction_id = self._apply_needs(connection, station, evse_id, departure, energy_kwh, now)
        self._update_needs(connection, station.station_id, correlation_id, status="applied",
                           transaction_id=transaction_id, updated_at=self._t(now))
        return changes

    def _apply_needs(self, connection: Any, station: StationInfo, evse_id: int, departure: datetime | None,
                     energy_kwh: float | None, now: datetime) -> tuple[list[SessionChange], str | None]:
        """Accepted needs: onto the active session of the EVSE, else kept for its next TransactionEvent Started."""
        active = connection.execute(select(ev_sessions).where(and_(
            ev_sessions.c.station_id == station.station_id, ev_sessions.c.status == "active",
            ev_sessions.c.evse_id == evse_id))).first()
        if active is None:
            # ISO 15118: needs may arrive before the transaction starts; keep them for TransactionEvent Started
            self._upsert_status(connection, station, evse_id, now, pending_departure=self._t(departure),
                                pending_energy_kwh=energy_kwh)
            return [], None
        values: dict[str, Any] = {"updated_at": self._t(now)}
        changed = False
        if departure is not None and (active.departure_is_default or from_db_time(active.departure) != departure):
            values.update(departure=self._t(departure), departure_is_default=False)
            changed = True
        if energy_kwh is not None and (active.energy_is_default or active.energy_requested_kwh != energy_kwh):
            values.update(energy_requested_kwh=energy_kwh, energy_is_default=False)
            changed = True
        connection.execute(update(ev_sessions).where(and_(
            ev_sessions.c.station_id == station.station_id,
            ev_sessions.c.transaction_id == active.transaction_id)).values(**values))
        if not changed:
            return [], active.transaction_id
        return [SessionChange("needs_changed", station.station_id, active.transaction_id, now)], active.transaction_id

    def _upsert_status(self, connection: Any, station: StationInfo, evse_id: int, now: datetime,
                       **values: Any) -> None:
        key = and_(ev_station_status.c.station_id == station.station_id, ev_station_status.c.evse_id == evse_id)
        if connection.execute(select(ev_station_status.c.station_id).where(key)).first() is None:
            connection.execute(insert(ev_station_status).values(
                site_id=station.site_id, station_id=station.station_id, evse_id=evse_id,
                connector_id=values.pop("connector_id", 1), updated_at=self._t(now), **values))
        else:
            connection.execute(update(ev_station_status).where(key).values(updated_at=self._t(now), **values))


def _of(query: Select, table: Table, station_ids: Iterable[str] | None, site_id: str | None) -> Select:
    """`query` narrowed to these stations and to one site's rows, each when given."""
    if station_ids is not None:
        query = query.where(table.c.station_id.in_(list(station_ids)))
    if site_id is not None:
        query = query.where(table.c.site_id == site_id)
    return query


def active_sessions(engine: Engine, station_ids: Iterable[str] | None = None,
                    site_id: str | None = None) -> list[dict[str, Any]]:
    """Open EV sessions in a plain shape for the scheduler: of these stations, of one site, each when given.

    Each dict: site_id, station_id, evse_id, transaction_id, arrival, departure (tz-aware UTC), energy_needed_kwh
    (requested minus delivered, never negative), energy_requested_kwh, energy_delivered_kwh, defaults (True when
    departure or energy is a configured default), departure_is_default, energy_is_default.
    """
    query = _of(select(ev_sessions).where(ev_sessions.c.status == "active").order_by(
        ev_sessions.c.station_id, ev_sessions.c.arrival), ev_sessions, station_ids, site_id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        {
            "site_id": row.site_id,
            "station_id": row.station_id,
            "evse_id": row.evse_id,
            "transaction_id": row.transaction_id,
            "arrival": from_db_time(row.arrival),
            "departure": from_db_time(row.departure),
            "energy_needed_kwh": max(0.0, row.energy_requested_kwh - row.energy_delivered_kwh),
            "energy_requested_kwh": row.energy_requested_kwh,
            "energy_delivered_kwh": row.energy_delivered_kwh,
            "defaults": bool(row.departure_is_default or row.energy_is_default),
            "departure_is_default": bool(row.departure_is_default),
            "energy_is_default": bool(row.energy_is_default),
        }
        for row in rows
    ]


def sessions_between(engine: Engine, start: datetime, end: datetime, station_ids: Iterable[str] | None = None,
                     now: datetime | None = None, site_id: str | None = None) -> list[dict[str, Any]]:
    """Every session, active or ended, that was plugged in at some time in [start, end): for the derived series
    of past days. Each dict: station_id, evse_id, transaction_id, arrival, departure (tz-aware UTC), and
    energy_requested_kwh. An ended session's departure is when it ended; an active one is still plugged in, so
    its departure is the expected one or `now` (default: the current time), whichever is later, as the scheduler
    keeps charging an EV that stays past its departure. Sorted by station and arrival; `site_id`: one site's."""
    now = now or datetime.now(UTC)
    query = _of(select(ev_sessions).where(and_(
        ev_sessions.c.arrival < to_db_time(engine, end),
        (ev_sessions.c.status == "active") | (ev_sessions.c.ended_at > to_db_time(engine, start)),
    )).order_by(ev_sessions.c.station_id, ev_sessions.c.arrival), ev_sessions, station_ids, site_id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    sessions = []
    for row in rows:
        ended = row.status == "ended"
        departure = from_db_time(row.ended_at) if ended else max(from_db_time(row.departure), now)
        if departure > start:
            sessions.append({"station_id": row.station_id, "evse_id": row.evse_id,
                             "transaction_id": row.transaction_id, "arrival": from_db_time(row.arrival),
                             "departure": departure, "energy_requested_kwh": row.energy_requested_kwh})
    return sessions


def unapplied_needs(engine: Engine, now: datetime | None = None, max_age: timedelta = timedelta(hours=24),
                    station_ids: Iterable[str] | None = None, site_id: str | None = None) -> list[dict[str, Any]]:
    """EV charging needs the scheduler runs without: per station and EVSE, the latest NotifyEVChargingNeeds of the
    last `max_age`, when CitrineOS rejected it ("rejected") or has not answered it yet ("awaiting"), and no session
    on that EVSE has ended since (the car is still there).

    Each dict: station_id, evse_id, correlation_id, status, answer (None while awaiting), reason, departure,
    energy_kwh (what the EV asked for), requested_at, answered_at (tz-aware UTC). Sorted by station and EVSE.
    `station_ids`, `site_id`: only those stations', only that site's.
    """
    now = now or datetime.now(UTC)
    query = _of(select(ev_charging_needs).where(and_(
        ev_charging_needs.c.requested_at.is_not(None),
        ev_charging_needs.c.requested_at >= to_db_time(engine, now - max_age))).order_by(
        ev_charging_needs.c.requested_at, ev_charging_needs.c.id), ev_charging_needs, station_ids, site_id)
    with engine.connect() as connection:
        latest = {(row.station_id, row.evse_id): row for row in connection.execute(query).all()}
        out = []
        for (station_id, evse_id), row in sorted(latest.items()):
            if row.status not in ("rejected", "awaiting"):
                continue
            left = connection.execute(select(ev_sessions.c.transaction_id).where(and_(
                ev_sessions.c.station_id == station_id, ev_sessions.c.evse_id == evse_id,
                ev_sessions.c.status == "ended", ev_sessions.c.ended_at >= row.requested_at)).limit(1)).first()
            if left is not None:
                continue
            out.append({
                "station_id": station_id, "evse_id": evse_id, "correlation_id": row.correlation_id,
                "status": row.status, "answer": row.answer, "reason": row.reason,
                "departure": from_db_time(row.departure), "energy_kwh": row.energy_kwh,
                "requested_at": from_db_time(row.requested_at), "answered_at": from_db_time(row.answered_at),
            })
    return out


def has_session_history(engine: Engine) -> bool:
    """Whether the bus has ever brought a session: then live sessions, not a template, describe the site."""
    with engine.connect() as connection:
        return connection.scalar(select(ev_sessions.c.station_id).limit(1)) is not None


def active_transactions(engine: Engine, site_id: str | None = None) -> dict[str, str]:
    """station id -> transaction id of its newest active session (what TxProfile needs), of one site if given."""
    out: dict[str, str] = {}
    for session in active_sessions(engine, site_id=site_id):
        out[session["station_id"]] = session["transaction_id"]
    return out


def stations_from_portfolio(portfolio: Portfolio) -> dict[str, StationInfo]:
    """station id -> StationInfo for every charge point of every site of the portfolio (charge point ids are unique
    across it): what the one session consumer, which sees every station's messages, keys their rows by."""
    stations = {}
    for site_id in portfolio.site_ids:
        site = portfolio.site(site_id)
        for cp in site.charge_points:
            stations[cp.id] = StationInfo(cp.id, cp.sensor_id, site_id,
                                          site.sensor(cp.sensor_id).resolution or site.resolution)
    return stations
