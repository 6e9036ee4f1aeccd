"""Write the Grafana dashboard, or check that the committed one matches the generator.

    python -m cariflex_pipeline.grafana            # writes deploy/grafana/dashboards/cariflex.json
    python -m cariflex_pipeline.grafana --check    # exit 1 with a diff when the committed file differs
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from cariflex_pipeline.grafana.dashboard import dashboard_json
from cariflex_pipeline.site_model import load_site

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "cariflex.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cariflex_pipeline.grafana", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--site", help="site file (default: $CARIFLEX_SITE_FILE or the bundled site)")
    args = parser.parse_args(argv)
    generated = dashboard_json(load_site(args.site))
    if not args.check:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(generated, encoding="utf-8")
        print(f"wrote {args.output}")
        return 0
    committed = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    if committed == generated:
        print(f"{args.output} matches the generator")
        return 0
    sys.stdout.writelines(difflib.unified_diff(committed.splitlines(keepends=True), generated.splitlines(
        keepends=True), fromfile=f"{args.output} (committed)", tofile="generated"))
    print(f"\n{args.output} differs from the generator: run python -m cariflex_pipeline.grafana", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
