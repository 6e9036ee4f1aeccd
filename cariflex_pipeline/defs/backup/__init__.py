import dagster as dg

from cariflex_pipeline.defs.backup.jobs import daily_backup, store_backup

defs = dg.Definitions(jobs=[store_backup], schedules=[daily_backup])
