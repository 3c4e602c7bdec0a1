"""User-facing errors: the CLI prints their message (which says how to fix it), not a traceback."""


class SrarenaError(Exception):
    """Base of every error whose message is meant for the user."""


class ConfigError(SrarenaError):
    """A configuration value is missing, malformed or out of range."""


class DataError(SrarenaError):
    """A dataset folder, manifest or image cannot be used as configured."""
