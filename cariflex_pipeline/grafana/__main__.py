"""Write the Grafana dashboard, or check that the committed one matches the generator.

    python -m cariflex_pipeline.grafana            # writes deploy/grafana/dashboards/cariflex.json
    python -m cariflex_pipeline.grafana --check    # exit 1 with a diff when the committed file differs

A fleet's portfolio (--site or $CARIFLEX_PORTFOLIO_FILE) gets one dashboard per site, `cariflex-<site id>.json`
beside --output with the uid `cariflex-site-<site id>`, each on its site's own sensors and derived range, and the
fleet's overview `cariflex-fleet.json` (uid `cariflex-fleet`: one series per site, links to each site's);
--site-id writes one site's only.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from cariflex_pipeline.grafana.dashboard import DASHBOARD_UID, dashboard_json, fleet_dashboard_json
from cariflex_pipeline.site_model import load_portfolio

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "cariflex.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cariflex_pipeline.grafana", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--site", help="site or portfolio file (default: $CARIFLEX_PORTFOLIO_FILE, else "
                                       "$CARIFLEX_SITE_FILE or the bundled site)")
    parser.add_argument("--site-id", help="one site of a fleet (default: every site)")
    args = parser.parse_args(argv)
    portfolio = load_portfolio(args.site)
    if len(portfolio.sites) == 1 and args.site_id is None:
        return _write_or_check(dashboard_json(portfolio.only_site()), args.output, args.check)
    failed = 0
    for site_id in [args.site_id] if args.site_id else portfolio.site_ids:
        generated = dashboard_json(portfolio.site(site_id), uid=f"{DASHBOARD_UID}-{site_id}")
        failed |= _write_or_check(generated, args.output.with_name(f"cariflex-{site_id}.json"), args.check)
    if args.site_id is None:
        failed |= _write_or_check(fleet_dashboard_json(portfolio), args.output.with_name("cariflex-fleet.json"),
                                  args.check)
    return failed


def _write_or_check(generated: str, output: Path, check: bool) -> int:
    """Write `generated` to `output`, or compare them (exit status 1 and a diff when they differ)."""
    if not check:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(generated, encoding="utf-8")
        print(f"wrote {output}")
        return 0
    committed = output.read_text(encoding="utf-8") if output.exists() else ""
    if committed == generated:
        print(f"{output} matches the generator")
        return 0
    sys.stdout.writelines(difflib.unified_diff(committed.splitlines(keepends=True), generated.splitlines(
        keepends=True), fromfile=f"{output} (committed)", tofile="generated"))
    print(f"\n{output} differs from the generator: run python -m cariflex_pipeline.grafana", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
