"""Live EV sessions from the CitrineOS bus.

A durable queue of our own is bound to the CitrineOS exchange once per station request we follow
(origin=cs, state="1", action=TransactionEvent | MeterValues | StatusNotification | NotifyEVChargingNeeds).
`SessionConsumer.drain()` turns those messages into:

- rows of `ev_sessions` (one per station and transaction: arrival, departure, energy requested/delivered,
  with `*_is_default` flags when the EV did not say and configured defaults apply);
- station/EVSE status rows in `ev_station_status`;
- measured power (Power.Active.Import) as beliefs of the charge point's sensor (61-70) in the store, source
  "citrineos-meter", one value per slot: the slot's energy-weighted average (see `power_frame`).

A malformed or unexpected message is published to a dead-letter queue with the reason in its headers
(`x-cariflex-reason`) and acknowledged; the consumer keeps going. A message from a station that is not in the
site model is logged and acknowledged. `active_sessions(engine)` gives the scheduler the open sessions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import pandas as pd
import pika
from sqlalchemy import Engine, and_, insert, select, update

from cariflex_pipeline.dispatch.connections import close_quietly, connect_blocking, declare_exchange_passively
from cariflex_pipeline.dispatch.envelope import BusMessage, EnvelopeError, decode
from cariflex_pipeline.dispatch.profiles import floor_to_grid
from cariflex_pipeline.dispatch.tables import ev_sessions, ev_station_status
from cariflex_pipeline.store.times import from_db_time, to_db_time

LOG = logging.getLogger(__name__)

FOLLOWED_ACTIONS = ("TransactionEvent", "MeterValues", "StatusNotification", "NotifyEVChargingNeeds")
METER_SOURCE = "citrineos-meter"


class SessionMessageError(ValueError):
    """A station message that cannot be used; the reason goes with it to the dead-letter queue."""


class UnknownStationError(LookupError):
    """A message from a station that is not in the site model (logged and acknowledged, never dead-lettered)."""

    def __init__(self, station_id: str) -> None:
        self.station_id = station_id
        super().__init__(f"station {station_id} is not in the site model")


@dataclass(frozen=True)
class SessionDefaults:
    """Applied when the EV does not say when it leaves or how much it needs (marked as defaults)."""

    dwell: timedelta = timedelta(hours=8)
    energy_kwh: float = 20.0


@dataclass(frozen=True)
class StationInfo:
    station_id: str
    sensor_id: int
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


@dataclass
class DrainReport:
    processed: int = 0
    dead_lettered: int = 0
    unknown_station: int = 0
    beliefs_written: int = 0
    changes: list[SessionChange] = field(default_factory=list)
    dead_letter_reasons: list[str] = field(default_factory=list)


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
        if message.state != 1:
            raise SessionMessageError(f"station {message.station_id}: unexpected state {message.state} for "
                                      f"{message.action} (expected 1)")
        violations = sorted(_request_validator(message.action).iter_errors(message.payload), key=str)
        if violations:
            first = violations[0]
            path = "/".join(str(p) for p in first.absolute_path) or "payload"
            raise SessionMessageError(f"{message.action} from station {message.station_id} breaks the OCPP 2.0.1 "
                                      f"schema at {path}: {first.message}")
        station = self.stations.get(message.station_id)
        if station is None:
            raise UnknownStationError(message.station_id)
        handler: Callable[..., list[SessionChange]] = getattr(self, f"_on_{message.action}")
        samples: list[tuple[int, datetime, float]] = []
        try:
            with self.engine.begin() as connection:
                changes = handler(connection, station, message.payload, now, samples)
        except SessionMessageError as error:  # the reason goes to the dead-letter queue: name the station
            text = str(error)
            if f"station {station.station_id}" not in text:
                raise SessionMessageError(f"station {station.station_id}: {text}") from None
            raise
        return changes, samples

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
            connection.execute(insert(ev_sessions).values(
                station_id=station.station_id, transaction_id=transaction_id, evse_id=evse_id,
                status="ended" if ended else "active", arrival=self._t(at), departure=self._t(departure),
                departure_is_default=departure_default, energy_requested_kwh=energy,
                energy_is_default=energy_default, meter_start_wh=register, energy_delivered_kwh=0.0,
                last_power_kw=samples[-1][2] if samples else None, last_seq_no=payload["seqNo"],
                ended_at=self._t(at) if ended else None,
                stopped_reason=payload["transactionInfo"].get("stoppedReason"), updated_at=self._t(now)))
            changes.append(SessionChange("ended" if ended else "started", station.station_id, transaction_id, at))
            return changes
        values: dict[str, Any] = {"updated_at": self._t(now), "last_seq_no": payload["seqNo"]}
        if register is not None:
            if row.meter_start_wh is None:
                values["meter_start_wh"] = register
            else:
                values["energy_delivered_kwh"] = max(0.0, (register - row.meter_start_wh) / 1000.0)
        if samples:
            values["last_power_kw"] = samples[-1][2]
        if event_type == "Ended" and row.status != "ended":
            values.update(status="ended", ended_at=self._t(at),
                          stopped_reason=payload["transactionInfo"].get("stoppedReason"))
            changes.append(SessionChange("ended", station.station_id, transaction_id, at))
        connection.execute(update(ev_sessions).where(and_(
            ev_sessions.c.station_id == station.station_id, ev_sessions.c.transaction_id == transaction_id)
        ).values(**values))
        return changes

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
        self._upsert_status(connection, station.station_id, payload["evseId"], now,
                            connector_id=payload["connectorId"], connector_status=payload["connectorStatus"],
                            status_at=self._t(at))
        return []

    def _on_NotifyEVChargingNeeds(self, connection: Any, station: StationInfo, payload: dict[str, Any],
                                  now: datetime, samples: list) -> list[SessionChange]:
        needs = payload["chargingNeeds"]
        evse_id = payload["evseId"]
        departure = _parse_time(needs["departureTime"], "chargingNeeds.departureTime") \
            if needs.get("departureTime") else None
        parameters = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
        energy_kwh = parameters["energyAmount"] / 1000.0 if "energyAmount" in parameters else None
        if energy_kwh is not None and energy_kwh < 0:
            raise SessionMessageError(f"station {station.station_id}: negative energyAmount {energy_kwh * 1000} Wh")
        active = connection.execute(select(ev_sessions).where(and_(
            ev_sessions.c.station_id == station.station_id, ev_sessions.c.status == "active",
            ev_sessions.c.evse_id == evse_id))).first()
        if active is None:
            # ISO 15118: needs may arrive before the transaction starts; keep them for TransactionEvent Started
            self._upsert_status(connection, station.station_id, evse_id, now, pending_departure=self._t(departure),
                                pending_energy_kwh=energy_kwh)
            return []
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
            return []
        return [SessionChange("needs_changed", station.station_id, active.transaction_id, now)]

    def _upsert_status(self, connection: Any, station_id: str, evse_id: int, now: datetime, **values: Any) -> None:
        key = and_(ev_station_status.c.station_id == station_id, ev_station_status.c.evse_id == evse_id)
        if connection.execute(select(ev_station_status.c.station_id).where(key)).first() is None:
            connection.execute(insert(ev_station_status).values(
                station_id=station_id, evse_id=evse_id, connector_id=values.pop("connector_id", 1),
                updated_at=self._t(now), **values))
        else:
            connection.execute(update(ev_station_status).where(key).values(updated_at=self._t(now), **values))


SlotCoverage = dict[tuple[int, datetime], tuple[float, datetime]]  # (sensor, slot) -> (average kW, covered to)


def power_frame(samples: Iterable[tuple[int, datetime, float]], resolution: timedelta,
                previous: SlotCoverage | None = None) -> pd.DataFrame:
    """Samples -> belief frame: one value per sensor and slot, the slot's energy-weighted average power.

    The slot's latest sample alone is not what the slot consumed: a car that charged at 11 kW for 14 minutes
    and stopped a minute before the slot ended would show 0 kW. So each sample stands for the power since the
    sample before it, clipped to its slot (as the energy register's difference between two readings would),
    and a slot's value is its energy over the time covered so far, from the slot's start to its latest
    sample. That time is the belief time, so a later drain continues a slot from `previous` (the slot's
    stored average and belief time) without counting a sample twice: samples at or before it are ignored.
    A lone sample exactly on the slot's start covers no time and stands for itself.
    """
    coverage: SlotCoverage = dict(previous or {})
    energy: dict[tuple[int, datetime], float] = {}  # kW*s since the slot start
    touched: set[tuple[int, datetime]] = set()
    last_at: dict[int, datetime] = {}
    for sensor_id, at, kw in sorted(samples, key=lambda sample: (sample[0], sample[1])):
        slot = floor_to_grid(at, resolution)
        key = (sensor_id, slot)
        if key not in energy:
            average, covered = coverage.get(key, (0.0, slot))
            energy[key] = average * (covered - slot).total_seconds()
        _, covered = coverage.get(key, (0.0, slot))
        if key in coverage and at <= covered:
            continue  # counted by an earlier drain (a redelivery or a late sample)
        start = max(slot, covered, last_at.get(sensor_id, slot))
        energy[key] += kw * (at - start).total_seconds()
        span = (at - slot).total_seconds()
        coverage[key] = (energy[key] / span if span > 0 else kw, at)
        last_at[sensor_id] = at
        touched.add(key)
    rows = [{"sensor_id": s, "event_start": slot, "value": coverage[(s, slot)][0],
             "belief_time": coverage[(s, slot)][1]} for s, slot in sorted(touched)]
    frame = pd.DataFrame(rows, columns=["sensor_id", "event_start", "value", "belief_time"])
    if not frame.empty:
        frame["event_start"] = pd.to_datetime(frame["event_start"], utc=True)
        frame["belief_time"] = pd.to_datetime(frame["belief_time"], utc=True)
    return frame


def active_sessions(engine: Engine, station_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Open EV sessions in a plain shape for the scheduler.

    Each dict: station_id, evse_id, transaction_id, arrival, departure (tz-aware UTC), energy_needed_kwh
    (requested minus delivered, never negative), energy_requested_kwh, energy_delivered_kwh, defaults (True when
    departure or energy is a configured default), departure_is_default, energy_is_default.
    """
    query = select(ev_sessions).where(ev_sessions.c.status == "active").order_by(
        ev_sessions.c.station_id, ev_sessions.c.arrival)
    if station_ids is not None:
        query = query.where(ev_sessions.c.station_id.in_(list(station_ids)))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        {
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


def has_session_history(engine: Engine) -> bool:
    """Whether the bus has ever brought a session: then live sessions, not a template, describe the site."""
    with engine.connect() as connection:
        return connection.scalar(select(ev_sessions.c.station_id).limit(1)) is not None


def active_transactions(engine: Engine) -> dict[str, str]:
    """station id -> transaction id of its newest active session (what TxProfile needs)."""
    out: dict[str, str] = {}
    for session in active_sessions(engine):
        out[session["station_id"]] = session["transaction_id"]
    return out


class SessionConsumer:
    """Drains our session queue: station requests -> sessions, station status and measured power."""

    def __init__(
        self,
        url: str,
        book: SessionBook,
        *,
        write_beliefs: Callable[[pd.DataFrame], int] | None = None,
        read_beliefs: Callable[[list[int], datetime, datetime], pd.DataFrame] | None = None,
        exchange: str = "citrineos",
        queue: str = "cariflex.sessions",
        dead_letter_queue: str | None = None,
        tenant_id: str | None = None,
        connection_name: str = "cariflex-sessions",
        ca_file: str | None = None,
    ) -> None:
        self.url = url
        self.ca_file = ca_file
        self.book = book
        self.write_beliefs = write_beliefs
        self.read_beliefs = read_beliefs  # (sensor ids, start, end) -> the measured power already stored
        self.exchange = exchange
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue or f"{queue}.dead"
        self.tenant_id = tenant_id
        self.connection_name = connection_name

    def setup(self, channel: Any) -> None:
        """Check CitrineOS's exchange, declare our durable queue and its dead letters, bind what we follow."""
        declare_exchange_passively(channel, self.exchange, self.url)
        channel.queue_declare(self.dead_letter_queue, durable=True)
        channel.queue_declare(self.queue, durable=True)
        for action in FOLLOWED_ACTIONS:
            arguments = {"x-match": "all", "origin": "cs", "state": "1", "action": action}
            if self.tenant_id is not None:
                arguments["tenantId"] = str(self.tenant_id)
            channel.queue_bind(self.queue, self.exchange, routing_key="", arguments=arguments)

    def ensure_queue(self) -> None:
        """Declare and bind our queue now, so that nothing published from here on is missed."""
        connection = connect_blocking(self.url, self.connection_name, self.ca_file)
        try:
            self.setup(connection.channel())
        finally:
            close_quietly(connection)

    def drain(self, max_messages: int = 10_000, idle_timeout: float = 0.2,
              now: Callable[[], datetime] | None = None) -> DrainReport:
        """Consume what is queued (up to `max_messages`), then return. Acks only after the data is stored."""
        report = DrainReport()
        samples: list[tuple[int, datetime, float]] = []
        connection = connect_blocking(self.url, self.connection_name, self.ca_file)
        try:
            channel = connection.channel()
            self.setup(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=200)
            to_ack: list[int] = []
            for method, properties, body in channel.consume(self.queue, inactivity_timeout=idle_timeout):
                if method is None:
                    break
                headers = dict(properties.headers or {})
                try:
                    message = decode(headers, body)
                    changes, new_samples = self.book.apply(message, now() if now else None)
                    report.changes += changes
                    samples += new_samples
                    report.processed += 1
                except (EnvelopeError, SessionMessageError, UnknownStationError, TypeError, ValueError) as error:
                    if isinstance(error, UnknownStationError):
                        LOG.warning("station %s is not in the site model: message ignored", error.station_id)
                        report.unknown_station += 1
                    else:
                        reason = str(error) or type(error).__name__
                        self._dead_letter(channel, headers, body, reason)
                        report.dead_lettered += 1
                        report.dead_letter_reasons.append(reason)
                to_ack.append(method.delivery_tag)
                if len(to_ack) >= max_messages:
                    break
            self._store_samples(samples, report)
            if to_ack:
                channel.basic_ack(to_ack[-1], multiple=True)
            channel.cancel()
        finally:
            close_quietly(connection)
        return report

    def _store_samples(self, samples: list[tuple[int, datetime, float]], report: DrainReport) -> None:
        if not samples or self.write_beliefs is None:
            return
        resolution = next(iter(self.book.stations.values())).resolution
        previous: SlotCoverage = {}
        if self.read_beliefs is not None:
            slots = [floor_to_grid(at, resolution) for _, at, _ in samples]
            stored = self.read_beliefs(sorted({sensor for sensor, _, _ in samples}), min(slots),
                                       max(slots) + resolution)
            for row in stored.itertuples():
                previous[(int(row.sensor_id), row.event_start.to_pydatetime())] = (
                    float(row.value), row.belief_time.to_pydatetime())
        frame = power_frame(samples, resolution, previous)
        report.beliefs_written = self.write_beliefs(frame)

    def _dead_letter(self, channel: Any, headers: dict[str, Any], body: bytes, reason: str) -> None:
        LOG.warning("session queue %s: dead-lettering a message: %s", self.queue, reason)
        dead_headers = {k: v for k, v in headers.items() if isinstance(v, str | int | float | bool)}
        dead_headers.update({"x-cariflex-reason": reason[:1000], "x-cariflex-queue": self.queue})
        channel.basic_publish("", self.dead_letter_queue, body,
                              pika.BasicProperties(headers=dead_headers, delivery_mode=2,
                                                   content_type="application/json"))


def stations_from_site(site: Any) -> dict[str, StationInfo]:
    """station id -> StationInfo for every charge point of a site model."""
    resolution = site.resolution
    return {cp.id: StationInfo(cp.id, cp.sensor_id, site.sensor(cp.sensor_id).resolution or resolution)
            for cp in site.charge_points}


def session_dicts(changes: Iterable[SessionChange]) -> list[dict[str, Any]]:
    return [asdict(change) for change in changes]
