"""cai: a Constitutional-AI / RLAIF pipeline. `import cai` is its one import name.

The Python API (`cai.api`): `cai.load_config`, `cai.run`, `cai.plan` and `cai.Run`. They load on
first use, so `import cai` stays light.
"""

__version__ = "0.1.0"
__all__ = ["Run", "load_config", "plan", "run"]


def __getattr__(name):
    if name in __all__:
        from cai import api
        return getattr(api, name)
    raise AttributeError(f"module 'cai' has no attribute {name!r}")
