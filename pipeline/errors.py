"""Typed errors. Each one is a user-facing, one-line message that says what is wrong and the fix.

The CLI prints `str(error)` alone (no traceback) for every subclass of CaiError;
`cai --debug` restores the traceback.
"""


class CaiError(Exception):
    """A mistake the user can fix (bad config, missing model, locked run directory...)."""


class ConfigError(CaiError):
    """The run config (YAML file or --set override) is invalid."""


class DataError(CaiError):
    """An input data file (prompts, calibration slice) is unreadable or malformed."""


class ModelUnavailable(CaiError):
    """A model cannot be found or fetched (offline, wrong path, unknown alias)."""


class BackendError(CaiError):
    """A backend failed in a way retrying will not fix."""


class RunLocked(CaiError):
    """Another cai process holds the run directory."""


class StoreDamaged(CaiError):
    """A run's store file cannot be read as a cai store (cut short, overwritten, not a file)."""
