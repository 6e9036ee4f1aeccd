"""The dispatch broker/transport as a Dagster resource, configured from the environment.

CARIFLEX_DISPATCH_TRANSPORT   outbox (embedded default: nothing leaves the machine) | amqp | rest
CARIFLEX_AMQP_URL             amqp://user:pass@host:5672/%2F or amqps://... (TLS); also enables the session sensor
CARIFLEX_CITRINEOS_EXCHANGE   CitrineOS's exchange (default citrineos)
CARIFLEX_CITRINEOS_ENVELOPE   1.8 (stationId, default) or 1.9 (ocppConnectionName)
CARIFLEX_CITRINEOS_TENANT     tenant id (default 1)
CARIFLEX_CITRINEOS_URL        CitrineOS REST base URL (rest transport)
CARIFLEX_CITRINEOS_TOKEN      Bearer token for REST (resolved at run time, never shown or logged)
CARIFLEX_CITRINEOS_GRAPHQL_URL  CitrineOS's Hasura GraphQL (stations and locations for the asset sync check)
CARIFLEX_CITRINEOS_CALLBACK_URL  where CitrineOS posts REST answers (our callback receiver), required with rest
CARIFLEX_DISPATCH_ANSWER_QUEUE / CARIFLEX_SESSION_QUEUE   our own queue names
CARIFLEX_DISPATCH_CA_FILE     PEM of a private CA for amqps:// and https:// (default: the system CAs)
"""

import dataclasses
import os
from collections.abc import Callable
from datetime import datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from cariflex_pipeline.dispatch import (
    AnswerBook,
    DispatchSettings,
    SessionBook,
    SessionConsumer,
    Transport,
)

ENV_VARS = {
    "transport": "CARIFLEX_DISPATCH_TRANSPORT",
    "amqp_url": "CARIFLEX_AMQP_URL",
    "exchange": "CARIFLEX_CITRINEOS_EXCHANGE",
    "envelope_version": "CARIFLEX_CITRINEOS_ENVELOPE",
    "tenant_id": "CARIFLEX_CITRINEOS_TENANT",
    "rest_url": "CARIFLEX_CITRINEOS_URL",
    "rest_token": "CARIFLEX_CITRINEOS_TOKEN",
    "graphql_url": "CARIFLEX_CITRINEOS_GRAPHQL_URL",
    "callback_url": "CARIFLEX_CITRINEOS_CALLBACK_URL",
    "answer_queue": "CARIFLEX_DISPATCH_ANSWER_QUEUE",
    "session_queue": "CARIFLEX_SESSION_QUEUE",
    "ca_file": "CARIFLEX_DISPATCH_CA_FILE",
}


class BrokerResource(dg.ConfigurableResource):
    """How profiles reach CitrineOS (AMQP, REST or outbox-only) and where EV sessions are read from."""

    transport: str = Field(default="outbox", description="outbox (default), amqp or rest")
    # repr=False: URLs may carry a password and the token is one; neither may reach a log or an error
    amqp_url: str | None = Field(default=None, repr=False, description="RabbitMQ URL (amqp:// or amqps://).")
    exchange: str = Field(default="citrineos", description="CitrineOS's headers exchange (declared passively).")
    envelope_version: str = Field(default="1.8", description="1.8: stationId; 1.9: ocppConnectionName.")
    tenant_id: str = Field(default="1")
    rest_url: str | None = Field(default=None, repr=False, description="CitrineOS REST base URL.")
    rest_token: str | None = Field(default=None, repr=False, description="Bearer token for the REST API.")
    graphql_url: str | None = Field(default=None, repr=False, description="CitrineOS's Hasura GraphQL URL (stations "
                                    "and locations for the asset sync check; sent the REST Bearer token).")
    callback_url: str | None = Field(default=None, description="Base URL of our callback receiver, for REST answers.")
    answer_queue: str = Field(default="cariflex.dispatch.answers")
    session_queue: str = Field(default="cariflex.sessions")
    ca_file: str | None = Field(default=None, description="PEM of a private CA for amqps/https.")

    def settings(self) -> DispatchSettings:
        return DispatchSettings(
            transport=(self.transport or "outbox").strip(), amqp_url=self.amqp_url or "",
            exchange=self.exchange, envelope_version=self.envelope_version, tenant_id=self.tenant_id,
            rest_url=self.rest_url or "", rest_token=self.rest_token or "", callback_url=self.callback_url or "",
            answer_queue=self.answer_queue,
            session_queue=self.session_queue, ca_file=self.ca_file or "")

    def make_transport(self, answer_book: AnswerBook | None = None, tenant_id: str | None = None) -> Transport:
        """The transport of the settings; `tenant_id` (a portfolio site's CitrineOS tenant) overrides the
        deployment's CARIFLEX_CITRINEOS_TENANT."""
        settings = self.settings()
        if tenant_id is not None:
            settings = dataclasses.replace(settings, tenant_id=tenant_id)
        return settings.make_transport(answer_book)

    def has_bus(self) -> bool:
        return bool(self.amqp_url)

    def session_consumer(
        self, book: SessionBook, write_beliefs: Callable[[pd.DataFrame], int],
        read_beliefs: Callable[[list[int], datetime, datetime], pd.DataFrame] | None = None,
    ) -> SessionConsumer:
        if not self.amqp_url:
            raise ValueError("the session consumer needs CARIFLEX_AMQP_URL")
        return SessionConsumer(self.amqp_url, book, write_beliefs=write_beliefs, read_beliefs=read_beliefs,
                               exchange=self.exchange,
                               queue=self.session_queue, tenant_id=self.tenant_id, ca_file=self.ca_file or None)


def broker_resource_from_env() -> BrokerResource:
    """A BrokerResource whose set variables are dg.EnvVar (resolved at run time); unset ones keep defaults."""
    fields = {field: dg.EnvVar(variable) for field, variable in ENV_VARS.items() if os.environ.get(variable)}
    return BrokerResource(**fields)
