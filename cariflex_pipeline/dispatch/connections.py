"""Connection setup shared by everything that talks to CitrineOS: URLs without secrets, TLS, RabbitMQ.

The AMQP transport (publisher, answer reader) and the session consumer connect the same way: parameters from an
amqp:// or amqps:// URL, a named connection, CitrineOS's exchange declared passively (CitrineOS owns it; declaring
it with other flags fails). Every error names host, port and vhost - never the user's password.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions

LOG = logging.getLogger(__name__)


def safe_url(url: str) -> str:
    """scheme://host:port/vhost, without credentials, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or ''}"


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying client TLS context: the system CAs, or `ca_file` (a private CA) when given."""
    return ssl.create_default_context(cafile=ca_file or None)


def amqp_parameters(url: str, connection_name: str = "cariflex-dispatch",
                    ca_file: str | None = None) -> pika.URLParameters:
    """pika parameters from an amqp:// or amqps:// URL (amqps verifies the server: system CAs or `ca_file`)."""
    parameters = pika.URLParameters(url)
    if url.startswith("amqps://"):
        parameters.ssl_options = pika.SSLOptions(tls_context(ca_file), urlsplit(url).hostname)
    parameters.client_properties = {"connection_name": connection_name}
    parameters.blocked_connection_timeout = 30
    return parameters


def connect_blocking(url: str, connection_name: str, ca_file: str | None = None) -> pika.BlockingConnection:
    """A blocking connection; ConnectionError naming the broker (not the password) when it cannot be had."""
    try:
        return pika.BlockingConnection(amqp_parameters(url, connection_name, ca_file))
    except (pika.exceptions.AMQPError, OSError) as error:  # OSError: TLS verification, refused, DNS
        raise ConnectionError(f"RabbitMQ at {safe_url(url)} unreachable: {type(error).__name__}") from None


def declare_exchange_passively(channel: Any, exchange: str, url: str) -> None:
    """Check that CitrineOS's exchange exists; ConnectionError naming it and the broker when it does not."""
    try:
        channel.exchange_declare(exchange, passive=True)
    except pika.exceptions.ChannelClosedByBroker as error:
        raise ConnectionError(f"exchange {exchange!r} not found on {safe_url(url)} (is CitrineOS running?): "
                              f"{error.reply_text}") from None


def close_quietly(connection: Any) -> None:
    """Close a connection that may already be broken without masking the error being handled."""
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # closing a broken connection must not mask the real error
        LOG.debug("closing the AMQP connection failed", exc_info=True)
