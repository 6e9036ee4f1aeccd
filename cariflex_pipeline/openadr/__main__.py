"""Ad-hoc VEN: `python -m cariflex_pipeline.openadr {sync,run,events}`.

Configuration from the environment (CARIFLEX_VTN_URL etc., see VtnConfig.from_env; unset URL = the bundled
sample feed), the store from CARIFLEX_DATABASE_URL (default: SQLite under DAGSTER_HOME).

  sync [--day YYYY-MM-DD ...]   ingest once (sample feed: the given days, default today) and print the report
  run [--max-polls N]           2.0b: a long-running VEN polling at the VTN's requested frequency
  events                        the audit log of received events
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from datetime import date

from cariflex_pipeline.openadr.repository import EventLog
from cariflex_pipeline.openadr.source import VtnConfig, ingest_from_source, peers_of, ven_20b
from cariflex_pipeline.openadr.ven20b import run_loop
from cariflex_pipeline.site_model import load_portfolio
from cariflex_pipeline.store import TimeSeriesStore, default_database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cariflex_pipeline.openadr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", default=None, help="site id of the portfolio ($CARIFLEX_PORTFOLIO_FILE); "
                        "default: the only site")
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync")
    sync.add_argument("--day", action="append", type=date.fromisoformat, default=None)
    run = commands.add_parser("run")
    run.add_argument("--max-polls", type=int, default=None)
    commands.add_parser("events")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    portfolio = load_portfolio()
    if args.site is None and len(portfolio.sites) > 1:
        parser.error(f"the portfolio has several sites; name one with --site: {', '.join(portfolio.site_ids)}")
    site_id = args.site or portfolio.site_ids[0]
    site = portfolio.site(site_id)
    store = TimeSeriesStore(default_database_url())
    store.migrate()
    store.register_sensors(site.sensors)
    config = VtnConfig.from_env()
    if args.command == "sync":
        report = ingest_from_source(config, portfolio, store, args.day, site_id=site_id)
    elif args.command == "run":
        if config.is_sample or config.protocol != "2.0b":
            parser.error("run needs CARIFLEX_VTN_URL of an OpenADR 2.0b VTN")
        if peers_of(portfolio, site_id):  # its polls would take the events of the other sites of its VEN
            parser.error(f"site {site_id!r} shares its VEN name with other sites; their VEN is polled by the "
                         "Dagster sensor (openadr_vtn_sensor), not by run")
        with ven_20b(config, site, store) as ven:
            report = run_loop(ven, site, store, site_id=site_id, max_polls=args.max_polls)
    else:
        for record in EventLog(store.engine, site_id=site_id).all():
            print(json.dumps({**asdict(record), "raw_payload": f"{len(record.raw_payload)} chars"}, default=str))
        return 0
    summary = asdict(report)
    summary["opt"] = {f"{event_id}@{modification}": opt for (event_id, modification), opt in report.opt.items()}
    summary["days"] = {day.isoformat(): {"events": dict(figures.events), "values_written": figures.values_written,
                                         "values_withdrawn": figures.values_withdrawn}
                       for day, figures in sorted(report.days.items())}
    print(json.dumps({"source": config.describe(), "store": store.describe(), **summary}, indent=2, default=str))
    return 1 if report.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
