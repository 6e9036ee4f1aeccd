"""The VTN as a Dagster resource, configured from the environment.

CARIFLEX_VTN_URL            base URL of the VTN (2.0b: .../OpenADR2/Simple/2.0b; 3.0.1: the API root);
                            unset: the bundled sample feed (works offline)
CARIFLEX_VTN_PROTOCOL       2.0b (default) or 3.0.1
CARIFLEX_VTN_CLIENT_ID      3.0.1 OAuth2 client id
CARIFLEX_VTN_CLIENT_SECRET  3.0.1 OAuth2 client secret (resolved at run time, never shown or logged)
CARIFLEX_VTN_TOKEN_URL      3.0.1 token endpoint; default {url}/auth/token
CARIFLEX_VTN_ID             name of the VTN as a data source (3.0.1; 2.0b VTNs name themselves)
CARIFLEX_VTN_TARGET_TYPE    3.0.1 targetType filter of GET /events (e.g. GROUP), optional; for the sites without
                            `openadr.targets` of their own in the portfolio
CARIFLEX_VTN_TARGET_VALUES  3.0.1 targetValues, comma-separated, optional
CARIFLEX_VTN_RUN_RETRIES    how often `openadr_vtn_sensor` retries a failed ingestion run of an event version (3)
CARIFLEX_VTN_RUN_RETRY_DELAY_SECONDS  wait after the first failure before retry 1; doubled for each next one (60)
CARIFLEX_VTN_RESYNC_SECONDS  2.0b: a full resync (oadrRequestEvent) at least this often (900)
CARIFLEX_VTN_DELETE_AFTER_SECONDS  3.0.1: an event unlisted this long is deleted (600)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg
from pydantic import Field

from cariflex_pipeline.openadr.source import VtnConfig

ENV_VARS = {
    "url": "CARIFLEX_VTN_URL",
    "protocol": "CARIFLEX_VTN_PROTOCOL",
    "client_id": "CARIFLEX_VTN_CLIENT_ID",
    "client_secret": "CARIFLEX_VTN_CLIENT_SECRET",
    "token_url": "CARIFLEX_VTN_TOKEN_URL",
    "vtn_id": "CARIFLEX_VTN_ID",
    "target_type": "CARIFLEX_VTN_TARGET_TYPE",
    "target_values": "CARIFLEX_VTN_TARGET_VALUES",
}
INT_ENV_VARS = {
    "run_retries": "CARIFLEX_VTN_RUN_RETRIES",
    "run_retry_delay_seconds": "CARIFLEX_VTN_RUN_RETRY_DELAY_SECONDS",
    "resync_seconds": "CARIFLEX_VTN_RESYNC_SECONDS",
    "delete_after_seconds": "CARIFLEX_VTN_DELETE_AFTER_SECONDS",
}


@dataclass(frozen=True)
class RunRetries:
    """How `openadr_vtn_sensor` retries an ingestion run that failed: at most `max_retries` more runs, retry n
    not before `first_delay * 2**(n-1)` after the end of the failed run."""

    max_retries: int
    first_delay: timedelta

    def delay(self, retry: int) -> timedelta:
        return self.first_delay * 2 ** (retry - 1)


class VtnResource(dg.ConfigurableResource):
    """Where prices and grid signals come from: an OpenADR 2.0b or 3.0.1 VTN, or the bundled sample feed."""

    url: str | None = Field(default=None, description="VTN base URL; empty: the bundled sample feed.")
    protocol: str = Field(default="2.0b", description="2.0b or 3.0.1")
    client_id: str | None = Field(default=None, description="OpenADR 3.0.1 OAuth2 client id.")
    client_secret: str | None = Field(default=None, description="OpenADR 3.0.1 OAuth2 client secret.")
    token_url: str | None = Field(default=None, description="OpenADR 3.0.1 token URL; default {url}/auth/token.")
    vtn_id: str | None = Field(default=None, description="3.0.1: the VTN's name as a data source.")
    target_type: str | None = Field(
        default=None, description="3.0.1: targetType of GET /events, for sites without targets of their own.")
    target_values: str | None = Field(default=None, description="3.0.1: targetValues, comma-separated.")
    timeout_seconds: float = Field(default=10.0, gt=0)
    retry_attempts: int = Field(default=4, ge=1)
    run_retries: int = Field(
        default=3, ge=0, description="Retries of a failed ingestion run requested by openadr_vtn_sensor.")
    run_retry_delay_seconds: int = Field(
        default=60, ge=0, description="Wait after a failed ingestion run before retry 1; doubled for each next one.")
    resync_seconds: int = Field(default=900, ge=0, description="2.0b: a full resync at least this often.")
    delete_after_seconds: int = Field(
        default=600, ge=0, description="3.0.1: an event absent from complete listings this long is deleted.")

    def run_retry_policy(self) -> RunRetries:
        return RunRetries(self.run_retries, timedelta(seconds=self.run_retry_delay_seconds))

    def config(self) -> VtnConfig:
        protocol = (self.protocol or "2.0b").strip()
        return VtnConfig(
            url=self.url or None, protocol=protocol, client_id=self.client_id or None,  # type: ignore[arg-type]
            client_secret=self.client_secret or None, token_url=self.token_url or None,
            vtn_id=self.vtn_id or None, timeout_seconds=self.timeout_seconds, retry_attempts=self.retry_attempts,
            target_type=self.target_type or None,
            target_values=tuple(v.strip() for v in (self.target_values or "").split(",") if v.strip()),
            resync_seconds=self.resync_seconds, delete_after_seconds=self.delete_after_seconds,
        )


def vtn_resource_from_env() -> VtnResource:
    """A VtnResource whose set variables are dg.EnvVar (resolved at run time); unset ones keep their defaults."""
    fields = {field: dg.EnvVar(variable) for field, variable in ENV_VARS.items() if os.environ.get(variable)}
    numbers = {field: dg.EnvVar.int(variable) for field, variable in INT_ENV_VARS.items() if os.environ.get(variable)}
    return VtnResource(**fields, **numbers)
