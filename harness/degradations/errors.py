"""Errors of the degradation package; user-facing ones derive from the harness's error types."""

from __future__ import annotations

try:  # the integrator's user-facing error hierarchy (the CLI prints these without a traceback)
    from srarena.harness.errors import ConfigError as _ConfigBase
    from srarena.harness.errors import DataError as _DataBase
except ImportError:  # pragma: no cover - keeps the package importable on its own
    _ConfigBase = ValueError  # type: ignore[misc,assignment]
    _DataBase = ValueError  # type: ignore[misc,assignment]


class DegradationConfigError(_ConfigBase, ValueError):
    """A degradation preset value is missing or out of range; the message names the key."""


class DegradationInputError(_DataBase, ValueError):
    """An image the pipeline cannot degrade as configured (too small, wrong channels or type)."""
