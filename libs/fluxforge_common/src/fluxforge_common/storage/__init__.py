"""Storage backends: one small atomic-file interface, local today and S3 with the same paths."""

from fluxforge_common.storage.base import (
    TEMP_PREFIX,
    StorageBackend,
    check_path,
    is_temp_name,
    sealed_name,
    unsealed_name,
)
from fluxforge_common.storage.local import LocalStorage

__all__ = [
    "TEMP_PREFIX",
    "LocalStorage",
    "StorageBackend",
    "check_path",
    "is_temp_name",
    "sealed_name",
    "unsealed_name",
]
