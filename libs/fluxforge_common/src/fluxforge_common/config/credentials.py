"""The one rule for secrets put into the config: refused, and never echoed back.

Every section that could be handed a secret refuses it with `credentials_refused`; the loader
(`settings._format_errors`) recognises such an error by `is_credentials_error` and shows
`<redacted>` instead of the value given.
"""

from __future__ import annotations

from collections.abc import Iterable

_MARKER = "credentials"


def credentials_refused(keys: Iterable[str], instead: str) -> ValueError:
    """The error for config keys that hold secrets; `instead` says where the secrets go."""
    return ValueError(f"{_MARKER} ({', '.join(keys)}) do not belong in the config: {instead}")


def is_credentials_error(message: str) -> bool:
    """Whether a validation message refuses a secret, so the value given must not be shown."""
    return _MARKER in message
