"""Moved to `mmml.utils.remote_code`; this module re-exports it so older imports keep working."""

from ..utils.remote_code import RemoteCodeMixin, RemoteCodeProcessorMixin, add_auto_map_to_json, write_shim

__all__ = ["RemoteCodeMixin", "RemoteCodeProcessorMixin", "add_auto_map_to_json", "write_shim"]
