"""The config reference: every key with its default and help, from the fields themselves
(`cai config --keys`, docs/reference/config.md)."""

import functools

from pydantic import BaseModel

from cai.config.run import RunConfig
from cai.config.train import TRAIN_KNOBS, TRAIN_STAGES, TrainConfig


@functools.cache
def help_rows() -> tuple:
    """(key, default, description) for every config key: the one source of help text.

    The training knobs are listed once, as `train.*`, with each stage's default; a stage's
    section lists only the keys it alone has."""
    def walk(model, prefix):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if name == "train":
                yield from _train_rows()
            elif isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from walk(ann, f"{prefix}{name}.")
            elif (f.json_schema_extra or {}).get("internal"):
                continue
            elif not (prefix[:-1] in TRAIN_STAGES and name in TRAIN_KNOBS):
                yield f"{prefix}{name}", f.default, f.description or ""
    return tuple(walk(RunConfig, ""))


def _train_rows():
    stages = {s.removeprefix("train_"): RunConfig.model_fields[s].annotation for s in TRAIN_STAGES}
    for knob in TRAIN_KNOBS:
        defaults = {name: model.model_fields[knob].default for name, model in stages.items()}
        shown = next(iter(defaults.values())) if len(set(map(repr, defaults.values()))) == 1 \
            else StageDefaults(defaults)
        desc = TrainConfig.model_fields[knob].description
        yield f"train.{knob}", shown, desc


class StageDefaults(dict):
    """Per-stage defaults of a training knob, shown as `sft 2e-05, rm 5e-05, policy 5e-05`."""
    def __repr__(self):
        return ", ".join(f"{k} {v!r}" for k, v in self.items())
