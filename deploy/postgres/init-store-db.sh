#!/bin/sh
# First start of the postgres service only: the time-series store's database beside the Dagster instance's
# (POSTGRES_DB). Both belong to POSTGRES_USER; the store migrates itself (Alembic) on first use.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${CARIFLEX_STORE_DB:-cariflex}\" OWNER \"$POSTGRES_USER\""
