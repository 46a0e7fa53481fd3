"""The one error type of configuration problems, and the validation helper every section uses."""
from __future__ import annotations

from typing import Iterable


class ConfigError(ValueError):
    """A config value or override that cannot be applied."""


def check_choice(key: str, value: object, allowed: Iterable[object]) -> None:
    """Raise :class:`ConfigError` naming ``key`` and the allowed values unless ``value`` is one."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose from {', '.join(map(str, allowed))}")
