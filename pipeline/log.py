"""What cai says while it runs: one `cai` logger. The terminal shows INFO (each stage's line)
unless `-q` (warnings and errors only) or `-v` (each batch of model calls; `-vv`: each call);
every run directory keeps a full log, `cai.log`, at DEBUG with times.

Used as a library (`import cai`), cai installs no terminal handler: the caller's logging
configuration decides what shows.
"""

import logging
import sys
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("cai")
LOG_NAME = "cai.log"
_console = None


class _Stdout(logging.StreamHandler):
    """The terminal as it is at each line (click's test runner swaps sys.stdout per command)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def set_verbosity(level: int):
    """-1 quiet, 0 normal, 1 verbose, 2 each call. Installs the terminal handler (the CLI)."""
    global _console
    if _console is None:
        _console = _Stdout()
        _console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(_console)
        logger.propagate = False
    _console.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(level, logging.DEBUG))
    logger.setLevel(logging.DEBUG)
    logger.calls = level >= 2  # the client logs each call only when asked


def say(line: str):
    """A line for the terminal (a stage's result) and the run's log."""
    logger.info(line)


@contextmanager
def to_file(run_dir):
    """Append everything logged meanwhile to `<run_dir>/cai.log`."""
    handler = logging.FileHandler(Path(run_dir) / LOG_NAME, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
        logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def quiet_libraries():
    """Our progress bars and stage lines are the output; library chatter is noise. Importing
    transformers and datasets costs a second or more, so a library not imported yet is quieted
    when it is (an import hook), one already imported at once."""
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    for name in _QUIET:
        if name in sys.modules:
            _QUIET[name](sys.modules[name])
    if not any(isinstance(f, _QuietOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietOnImport())


def _quiet_transformers(transformers):
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _quiet_datasets(datasets):
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


_QUIET = {"transformers": _quiet_transformers, "datasets": _quiet_datasets}


class _QuietOnImport:
    """A finder that finds nothing itself: it wraps the loader of transformers and datasets so
    that each is quieted as soon as its own import finishes."""

    def find_spec(self, name, path=None, target=None):
        if name not in _QUIET:
            return None
        import importlib.machinery
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader, _QUIET[name])
                return spec
        return importlib.machinery.PathFinder.find_spec(name, path, target)


class _QuietLoader:
    def __init__(self, loader, quiet):
        self.loader, self.quiet = loader, quiet

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        try:
            self.quiet(module)
        except Exception:  # a library without these switches stays as it is
            pass

    def __getattr__(self, name):
        return getattr(self.loader, name)
