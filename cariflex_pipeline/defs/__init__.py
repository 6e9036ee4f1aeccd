"""The Dagster shell: one folder per stage of the flow, each exposing `defs`; assembled in definitions.py."""
