"""`python -m cariflex_pipeline.store [DATABASE_URL]`: migrate the store and register the site's sensors."""

import sys

from cariflex_pipeline.site_model import load_site
from cariflex_pipeline.store import TimeSeriesStore, default_database_url


def main(argv: list[str]) -> int:
    store = TimeSeriesStore(argv[1] if len(argv) > 1 else default_database_url())
    store.migrate()
    count = store.register_sensors(load_site().sensors)
    print(f"store at {store.describe()} migrated; {count} sensors registered")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
