"""The DuckDB store: the only module of dyntools that holds SQL.

One database file per analysed folder (see ``locate_db``), long tables, polars frames in and out,
one short transaction per call and no connection kept open (DuckDB lets one process at a time hold
the file read-write).
"""

from dyntools.store.connection import StoreBusyError
from dyntools.store.export import export
from dyntools.store.location import DbLocation, default_db_path, find_existing_db, locate_db
from dyntools.store.schema import SCHEMA_VERSION, SchemaVersionError
from dyntools.store.store import Store, StoredFit

__all__ = [
    "SCHEMA_VERSION",
    "DbLocation",
    "SchemaVersionError",
    "Store",
    "StoreBusyError",
    "StoredFit",
    "default_db_path",
    "export",
    "find_existing_db",
    "locate_db",
]
