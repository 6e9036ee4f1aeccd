"""The receiver of CitrineOS's REST callbacks: what it records, and how it answers what it cannot record."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cariflex_pipeline.dispatch.callbacks import AnswerReceiver, callback_url, parse_callback_path, parse_listen
from cariflex_pipeline.dispatch.transports import Answer

KNOWN = "corr-known"


class Recorder:
    """Stands in for `Outbox.apply_answer`: knows one correlation id and keeps what it is given."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []

    def __call__(self, answer: Answer) -> bool:
        self.answers.append(answer)
        return answer.correlation_id == KNOWN


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def receiver(recorder: Recorder) -> Iterator[AnswerReceiver]:
    with AnswerReceiver(recorder) as running:
        yield running


def test_callback_url_quotes_each_part() -> None:
    url = callback_url("http://cariflex:8091/", "CP 01/a", "SetChargingProfile", "c?1")
    assert url == "http://cariflex:8091/citrineos/answers/CP%2001%2Fa/SetChargingProfile/c%3F1"
    assert parse_callback_path("/citrineos/answers/CP%2001%2Fa/SetChargingProfile/c%3F1") == (
        "CP 01/a", "SetChargingProfile", "c?1")


def test_callback_url_refuses_an_action_without_answers() -> None:
    with pytest.raises(ValueError, match="no callback for action 'GetChargingProfiles'"):
        callback_url("http://cariflex:8091", "CP001", "GetChargingProfiles", KNOWN)


def test_recorded_answer_is_204_and_carries_the_station_reason(receiver, recorder, caplog) -> None:
    payload = {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidSchedule", "additionalInfo": "over 22 kW"}}
    with caplog.at_level(logging.INFO, logger="cariflex_pipeline.dispatch.callbacks"):
        response = httpx.post(callback_url(receiver.url, "CP001", "SetChargingProfile", KNOWN), json=payload)
    assert (response.status_code, response.content) == (204, b"")
    assert recorder.answers == [Answer(KNOWN, "CP001", "Rejected", "InvalidSchedule over 22 kW",
                                       "SetChargingProfile")]
    assert recorder.answers[0].payload == payload
    assert caplog.messages == ["SetChargingProfile answer from station CP001, correlation id corr-known recorded: "
                               "Rejected (InvalidSchedule over 22 kW)"]


def test_composite_schedule_answer_keeps_the_whole_payload(receiver, recorder) -> None:
    payload = {"status": "Accepted", "schedule": {
        "evseId": 1, "duration": 900, "scheduleStart": "2026-11-28T13:00:00Z", "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000.0}]}}
    response = httpx.post(callback_url(receiver.url, "CP002", "GetCompositeSchedule", KNOWN), json=payload)
    assert response.status_code == 204
    [answer] = recorder.answers
    assert (answer.action, answer.status, answer.reason, answer.payload) == (
        "GetCompositeSchedule", "Accepted", "", payload)


def test_unknown_correlation_id_is_404(receiver, recorder, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="cariflex_pipeline.dispatch.callbacks"):
        response = httpx.post(callback_url(receiver.url, "CP001", "ClearChargingProfile", "corr-other"),
                              json={"status": "Accepted"})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown correlation id corr-other"}
    assert [a.correlation_id for a in recorder.answers] == ["corr-other"]
    assert caplog.messages == ["ClearChargingProfile answer from station CP001, correlation id corr-other "
                               "(Accepted): unknown correlation id, not recorded"]


def test_bad_body_is_400_naming_the_field(receiver, recorder, caplog) -> None:
    url = callback_url(receiver.url, "CP001", "SetChargingProfile", KNOWN)
    with caplog.at_level(logging.INFO, logger="cariflex_pipeline.dispatch.callbacks"):
        response = httpx.post(url, json={"status": "Maybe"})
    assert response.status_code == 400
    error = ("$.status: 'Maybe' is not one of ['Accepted', 'Rejected'] "
             "(CitrineOS 1.8.3 SetChargingProfileResponse schema)")
    assert response.json() == {"error": error}
    assert caplog.messages == [f"SetChargingProfile answer from station CP001, correlation id corr-known refused: "
                               f"{error}"]
    assert recorder.answers == []


def test_missing_status_and_non_json_bodies_are_400(receiver, recorder) -> None:
    url = callback_url(receiver.url, "CP001", "SetChargingProfile", KNOWN)
    missing = httpx.post(url, json={"statusInfo": {"reasonCode": "x"}})
    assert missing.json() == {"error": "$: 'status' is a required property "
                                       "(CitrineOS 1.8.3 SetChargingProfileResponse schema)"}
    not_json = httpx.post(url, content=b"Accepted", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json() == {"error": "body is not JSON: Expecting value: line 1 column 1 (char 0)"}
    assert recorder.answers == []


@pytest.mark.parametrize("path", [
    "/citrineos/answers/CP001/GetChargingProfiles/corr-known",
    "/citrineos/answers/CP001/SetChargingProfile",
    "/citrineos/answers/CP001/SetChargingProfile/corr-known/extra",
    "/elsewhere/CP001/SetChargingProfile/corr-known",
])
def test_other_paths_are_404(receiver, recorder, path) -> None:
    response = httpx.post(receiver.url + path, json={"status": "Accepted"})
    assert response.status_code == 404
    assert response.json() == {"error": f"no callback route {path}"}
    assert recorder.answers == []


def test_a_failing_record_is_500_without_the_error_text_in_the_reply(caplog) -> None:
    def broken(answer: Answer) -> bool:
        raise RuntimeError("database is locked\nmore detail")

    with AnswerReceiver(broken) as receiver, caplog.at_level(logging.ERROR):
        response = httpx.post(callback_url(receiver.url, "CP003", "SetChargingProfile", KNOWN),
                              json={"status": "Accepted"})
    assert (response.status_code, response.json()) == (500, {"error": "answer not recorded"})
    assert caplog.messages == ["SetChargingProfile answer from station CP003, correlation id corr-known (Accepted) "
                               "not recorded: RuntimeError: database is locked"]


def test_stop_closes_the_port(recorder) -> None:
    receiver = AnswerReceiver(recorder).start()
    url = receiver.url
    receiver.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(callback_url(url, "CP001", "SetChargingProfile", KNOWN), json={"status": "Accepted"})
    with pytest.raises(RuntimeError, match="not started"):
        _ = receiver.url


@pytest.mark.parametrize(("value", "expected"), [("127.0.0.1:8091", ("127.0.0.1", 8091)),
                                                 ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9000", ("::1", 9000))])
def test_parse_listen(value, expected) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8091", "localhost:", "localhost:http", "host:70000"])
def test_parse_listen_refuses_what_is_not_host_port(value) -> None:
    with pytest.raises(ValueError, match=f"CARIFLEX_CALLBACK_LISTEN={value!r} is not host:port"):
        parse_listen(value)


def _free_port() -> int:
    with AnswerReceiver(lambda answer: True) as probe:
        return int(probe.url.rsplit(":", 1)[1])


def _wait_for(url: str, process: subprocess.Popen) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            return httpx.post(url, json={"status": "Accepted"})
        except httpx.ConnectError:
            time.sleep(0.1)
    raise AssertionError(f"the receiver never listened at {url}")


@pytest.mark.slow
def test_module_main_migrates_the_store_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "CARIFLEX_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
           "CARIFLEX_CALLBACK_LISTEN": f"127.0.0.1:{port}"}
    process = subprocess.Popen([sys.executable, "-m", "cariflex_pipeline.dispatch.callbacks"], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        response = _wait_for(callback_url(f"http://127.0.0.1:{port}", "CP001", "SetChargingProfile", "nobody"),
                             process)
        # the migrated outbox is empty, so the correlation id is nobody's
        assert response.status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "correlation id nobody (Accepted): unknown correlation id, not recorded" in stderr
    assert "stopping the callback receiver" in stderr


def test_module_main_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    env = {**os.environ, "CARIFLEX_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
           "CARIFLEX_CALLBACK_LISTEN": "nowhere"}
    done = subprocess.run([sys.executable, "-m", "cariflex_pipeline.dispatch.callbacks"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "callback receiver not started: CARIFLEX_CALLBACK_LISTEN='nowhere' is not host:port" in done.stderr
