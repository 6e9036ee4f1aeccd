"""TLS when the URL asks for it: https:// for REST and amqps:// for RabbitMQ, verified against a private CA.

The RabbitMQ here listens without TLS, so the amqps test goes through a small TLS-terminating proxy in front of
the real broker (test scaffolding, like a TLS load balancer); the certificate is made by openssl for 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cariflex_pipeline.dispatch import AmqpTransport, Outbox, RestTransport, dispatch_profiles, profiles_from_plan
from cariflex_pipeline.dispatch.callbacks import AnswerReceiver
from cariflex_pipeline_tests.dispatch.citrineos_rest import CitrineRestDouble
from cariflex_pipeline_tests.dispatch.conftest import NOW, SITE_ID, plan_frame

START = NOW.replace(minute=0, second=0)


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


@pytest.fixture
def https_citrine(certificate) -> Iterator[CitrineRestDouble]:
    with CitrineRestDouble(tls=_server_context(certificate), clock=lambda: NOW) as double:
        double.connect("CP001")
        yield double


def test_rest_over_https_verified_with_the_configured_ca(https_citrine, certificate, store, site) -> None:
    built = profiles_from_plan(site, plan_frame(site, START, {"CP001": [7.0] * 4}), now=NOW)
    outbox = Outbox(store.engine)
    with AnswerReceiver(outbox.apply_answer) as receiver:
        untrusted = RestTransport(https_citrine.url, callback_base_url=receiver.url, answer_book=outbox)
        first = dispatch_profiles(outbox, untrusted, built.profiles, site_id=SITE_ID, run_id="r1", now=NOW)
        assert first.entries["CP001"].status == "failed"
        assert "ConnectError" in first.entries["CP001"].status_reason and https_citrine.calls == []
        trusted = RestTransport(https_citrine.url, callback_base_url=receiver.url, answer_book=outbox,
                                ca_file=str(certificate[0]))
        second = dispatch_profiles(outbox, trusted, built.profiles, site_id=SITE_ID,
                                                                    run_id="r2", now=NOW + timedelta(minutes=1),
                                   answer_timeout=5)
    assert second.entries["CP001"].status == "accepted"
    assert [call.query["identifier"] for call in https_citrine.calls] == ["CP001", "CP001"]  # profile, read-back


class TlsProxy:
    """TLS on 127.0.0.1:<port>, plain TCP to the broker behind it."""

    def __init__(self, context: ssl.SSLContext, upstream: tuple[str, int]) -> None:
        self.context, self.upstream = context, upstream
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]

    def __enter__(self) -> TlsProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        # the server belongs to the loop's thread: closing it from here raced with the loop (seen in CI)
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_amqps_dispatch_through_tls(amqp_url, exchange, names, make_router, certificate, store, site) -> None:
    from urllib.parse import urlsplit

    router = make_router("1.8")
    station = router.connect("CP002")
    broker = urlsplit(amqp_url)
    built = profiles_from_plan(site, plan_frame(site, START, {"CP002": [4.0] * 4}), now=NOW)
    outbox = Outbox(store.engine)
    with TlsProxy(_server_context(certificate), (broker.hostname, broker.port or 5672)) as proxy:
        url = f"amqps://{broker.username}:{broker.password}@127.0.0.1:{proxy.port}/%2F"
        untrusted = AmqpTransport(url, exchange=exchange, answer_queue=names["answers"])
        first = dispatch_profiles(outbox, untrusted, built.profiles, site_id=SITE_ID, run_id="r1", now=NOW)
        assert first.entries["CP002"].status == "failed" and station.received == []
        assert broker.password not in first.entries["CP002"].status_reason
        trusted = AmqpTransport(url, exchange=exchange, answer_queue=names["answers"], ca_file=str(certificate[0]))
        second = dispatch_profiles(outbox, trusted, built.profiles, site_id=SITE_ID,
                                                                    run_id="r2", now=NOW + timedelta(minutes=1),
                                   answer_timeout=10)
    assert (second.entries["CP002"].status, second.entries["CP002"].attempts) == ("accepted", 2)
    assert [r.message_id for r in station.received] == [second.entries["CP002"].correlation_id]
