"""The CitrineOS bus envelope, byte for byte as CitrineOS 1.8's sender builds it (shared/reference/citrineos.md
section 1), for both directions and both envelope versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cariflex_pipeline.dispatch import csms_request, decode, station_message
from cariflex_pipeline.dispatch.envelope import EnvelopeError

AT = datetime(2026, 11, 28, 13, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(("version", "key"), [("1.8", "stationId"), ("1.9", "ocppConnectionName")])
def test_csms_request_and_station_message_shapes(version: str, key: str) -> None:
    headers, body = csms_request(station_id="CP002", tenant_id="1", action="SetChargingProfile",
                                 payload={"evseId": 1}, correlation_id="c-1", version=version, now=AT)
    assert headers == {"origin": "csms", "eventGroup": "smartcharging", "action": "SetChargingProfile",
                       "state": "1", key: "CP002", "correlationId": "c-1", "tenantId": "1",
                       "timestamp": "2026-11-28T13:07:30Z"}
    assert json.loads(body) == {
        "origin": "csms", "eventGroup": "smartcharging", "action": "SetChargingProfile", "state": 1,
        "context": {key: "CP002", "tenantId": 1, "correlationId": "c-1", "timestamp": "2026-11-28T13:07:30Z"},
        "payload": {"evseId": 1}, "protocol": "ocpp2.0.1"}
    headers, body = station_message(station_id="CP002", tenant_id=1, action="SetChargingProfile", state=2,
                                     payload={"status": "Accepted"}, correlation_id="c-1", version=version, now=AT)
    assert headers == {"origin": "cs", "eventGroup": "router", "action": "SetChargingProfile", "state": "2",
                       key: "CP002", "correlationId": "c-1", "tenantId": "1", "timestamp": "2026-11-28T13:07:30Z"}
    document = json.loads(body)
    assert (document["origin"], document["state"], document["context"]["tenantId"]) == ("cs", 2, 1)
    message = decode(headers, body)
    assert (message.station_id, message.state, message.origin, message.correlation_id, message.payload) == (
        "CP002", 2, "cs", "c-1", {"status": "Accepted"})


def test_unknown_envelope_version_and_bad_bodies_are_named() -> None:
    with pytest.raises(ValueError, match=r"envelope version '2\.0'"):
        csms_request(station_id="CP001", tenant_id="1", action="SetChargingProfile", payload={},
                     correlation_id="c", version="2.0")
    with pytest.raises(EnvelopeError, match="station CP001: SetChargingProfile payload is not a JSON object"):
        decode({"stationId": "CP001"}, b'{"action": "SetChargingProfile", "state": 2, "payload": []}')


def test_a_body_that_is_not_an_object_names_the_action_and_station() -> None:
    import pytest

    from cariflex_pipeline.dispatch.envelope import EnvelopeError, decode

    with pytest.raises(EnvelopeError) as caught:
        decode({"action": "MeterValues", "stationId": "CP004"}, b"[1, 2]")
    assert str(caught.value) == "MeterValues from station CP004: body is a JSON list, not an object: b'[1, 2]'"
    with pytest.raises(EnvelopeError, match=r"^message from station \(unnamed\): body is not JSON"):
        decode(None, b"\xff")
