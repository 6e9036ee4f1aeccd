"""Where site measurements come from: a folder of readings files, or the bundled sample day."""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

MEASUREMENTS_DIR_ENV = "CARIFLEX_MEASUREMENTS_DIR"


class MeasurementsResource(dg.ConfigurableResource):
    """CSV readings files (see cariflex_pipeline.measurements.readings) in a folder; unset: the sample day."""

    directory: str | None = Field(
        default=None, description="Folder of readings CSV files; empty: the bundled sample weather and PV day."
    )

    def files(self) -> list[Path]:
        if not self.directory:
            return []
        folder = Path(self.directory)
        if not folder.is_dir():
            raise FileNotFoundError(f"measurements folder {folder} (from ${MEASUREMENTS_DIR_ENV}) does not exist")
        return sorted(folder.glob("*.csv"))


def measurements_resource_from_env() -> MeasurementsResource:
    if os.environ.get(MEASUREMENTS_DIR_ENV):
        return MeasurementsResource(directory=dg.EnvVar(MEASUREMENTS_DIR_ENV))
    return MeasurementsResource()
