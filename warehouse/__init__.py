"""The DuckDB warehouse: migrations, connection discipline, and every SQL statement."""

from .connection import DEFAULT_PATH, ENV_VAR, WarehouseBusy, connect, resolve_path, write
from .store import Store

__all__ = ["DEFAULT_PATH", "ENV_VAR", "Store", "WarehouseBusy", "connect", "resolve_path", "write"]
