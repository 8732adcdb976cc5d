"""Config keys that moved: an old key still works, with a warning that names its new keys.

Two old keys each stood for two settings: `sink.parquet_flush_seconds` was
wall-clock time to the embedded run and an event-time span to the sink, and
`sink.raw_segment_max_age_s` also bounded the sink's dead-letter files. An old
key sets every setting it stood for, so an old config behaves as before.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel

log = logging.getLogger("fluxforge.config")

# Old key -> the keys that now hold what it set.
RENAMED: Final[dict[str, tuple[str, ...]]] = {
    "sink.max_message_bytes": ("messages.max_bytes",),
    "sink.raw_compression": ("raw_archive.compression",),
    "sink.raw_segment_max_mb": ("raw_archive.segment_max_mb",),
    "sink.raw_segment_max_age_s": ("raw_archive.segment_max_age_s", "deadletter.max_span_s"),
    "sink.parquet_flush_rows": ("parquet.flush_rows",),
    "sink.parquet_flush_seconds": ("embedded.flush_interval_s", "sink.feature_span_s"),
    "sink.row_group_size": ("parquet.row_group_size",),
}

# Whether two values given for one (new) key mean the same setting.
SameValue = Callable[[str, Any, Any], bool]


def env_name(key: str) -> str:
    """`sink.max_message_bytes` -> `FLUXFORGE_SINK__MAX_MESSAGE_BYTES`."""
    return "FLUXFORGE_" + key.upper().replace(".", "__")


def deprecation_message(old: str) -> str:
    new = RENAMED[old]
    return (
        f"config key {old} ({env_name(old)}) is deprecated: use "
        + " and ".join(f"{key} ({env_name(key)})" for key in new)
        + ("; it set all of these" if len(new) > 1 else "")
    )


def move_renamed_keys(data: dict[str, Any], same: SameValue) -> tuple[dict[str, Any], list[str]]:
    """`data` (sections of raw settings) with every old key moved to its new keys, and the conflicts.

    Each old key found is reported once, as a `DeprecationWarning` and a
    warning on the `fluxforge.config` log. An old and a new key given
    different values is a conflict (described in the returned list).
    """
    moved = dict(data)
    conflicts: list[str] = []
    for old, new_keys in RENAMED.items():
        old_section, old_name = old.split(".")
        section = moved.get(old_section)
        if not isinstance(section, dict) or old_name not in section:
            continue
        moved[old_section] = section = dict(section)
        value = section.pop(old_name)
        message = deprecation_message(old)
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        log.warning("%s", message)
        for new in new_keys:
            new_section, new_name = new.split(".")
            target = moved[new_section] = _as_dict(moved.get(new_section, {}))
            if not isinstance(target, dict):
                continue  # neither a mapping nor a model: its validation reports it
            if new_name not in target:
                target[new_name] = value
            elif not same(new, value, target[new_name]):
                conflicts.append(
                    f"  {old} = {value!r} (deprecated) and {new} = {target[new_name]!r} differ: "
                    f"keep only {new}"
                )
    return moved, conflicts


def _as_dict(section: Any) -> Any:
    """A copy of a section, a model instance given as the mapping of the keys it was given."""
    if isinstance(section, BaseModel):
        return {name: getattr(section, name) for name in section.model_fields_set}
    return dict(section) if isinstance(section, dict) else section
