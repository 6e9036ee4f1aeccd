"""Tables in run metadata: the UI renders a TableMetadataValue inline (markdown sits behind a link)."""

from collections.abc import Mapping, Sequence

import dagster as dg

# (name, type, description) per column, as dg.TableColumn takes them
Columns = Sequence[tuple[str, str, str]]


def metadata_table(columns: Columns, rows: Sequence[Mapping[str, object]]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind, description=description)
                                     for name, kind, description in columns])
    return dg.MetadataValue.table([dg.TableRecord(dict(row)) for row in rows], schema=schema)
