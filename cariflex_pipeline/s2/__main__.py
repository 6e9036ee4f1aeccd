"""`python -m cariflex_pipeline.s2 serve [--host H] [--port P] [--cert-file C --key-file K]`: the S2 CEM endpoint
as its own long-lived process, recording into the store at CARIFLEX_DATABASE_URL until SIGTERM or SIGINT.

Flags override CARIFLEX_S2_HOST, CARIFLEX_S2_PORT, CARIFLEX_S2_CERT_FILE and CARIFLEX_S2_KEY_FILE (config.py).
Exit codes: 0 stopped by a signal, 2 bad configuration or store unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys

from cariflex_pipeline.s2.config import CemConfigError, CemSettings
from cariflex_pipeline.s2.devices import S2Device, portfolio_devices
from cariflex_pipeline.s2.server import CemServer
from cariflex_pipeline.site_model import SiteModelError, load_portfolio
from cariflex_pipeline.store import StoreUnavailableError, TimeSeriesStore, default_database_url

log = logging.getLogger("cariflex_pipeline.s2")


async def _serve(settings: CemSettings, store: TimeSeriesStore, devices: dict[str, S2Device]) -> None:
    server = CemServer(store, devices, settings)
    port = await server.start(settings.ssl_context())
    log.info("S2 CEM listening on %s (port %d) for %d site devices, recording into %s",
             settings.url, port, len(devices), store.describe())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("stopping the S2 CEM")
    await server.terminate_sessions("CEM shutting down")
    await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cariflex_pipeline.s2", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the S2 CEM websocket endpoint")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--cert-file")
    serve.add_argument("--key-file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = CemSettings.from_env()
        overrides = {"host": args.host, "port": args.port, "cert_file": args.cert_file, "key_file": args.key_file}
        settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.ssl_context()  # a bad certificate fails here, before anything binds
        store = TimeSeriesStore(default_database_url())
        store.migrate()
        portfolio = load_portfolio()  # one CEM serves every site's devices, each RM's rows keyed by its site
        devices = portfolio_devices(portfolio)
        store.register_portfolio(portfolio)
    except (CemConfigError, StoreUnavailableError, SiteModelError) as error:
        log.error("S2 CEM not started: %s", error)
        return 2
    asyncio.run(_serve(settings, store, devices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
