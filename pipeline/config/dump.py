"""The run config as a YAML file that, edited, does what it says (`cai config`, each run's
config.yaml): every section in full, except that a training stage's section lists only the
knobs it sets apart from `train`. So `train.epochs: 2` in the dump changes every training stage
that does not set its own, and a stage that does says so beside the key it shadows."""

import yaml

from cai.config.train import TRAIN_KNOBS, TRAIN_STAGES


def dump_yaml(config) -> str:
    data = config.settable()
    shared = {k: v for k, v in data["train"].items() if v is not None}
    out = []
    for section, value in data.items():
        if section == "train":
            out.append("# every training stage's knob unless its own section sets it; null: the "
                       "stage's default")
        if section in TRAIN_STAGES:
            own, shadows = _own(config, section, value, shared)
            out.append(_section(section, own, shadows))
        else:
            out.append(yaml.safe_dump({section: value}, sort_keys=False, allow_unicode=True).rstrip())
    return "\n".join(out) + "\n"


def _own(config, section: str, value: dict, shared: dict) -> tuple[dict, dict]:
    """The keys of a stage's section that train.* and the stage's defaults do not already give,
    and of them, those that shadow a train.* value."""
    fields = type(getattr(config, section)).model_fields
    own, shadows = {}, {}
    for key, v in value.items():
        if key not in TRAIN_KNOBS:
            own[key] = v
            continue
        given = shared.get(key, fields[key].default)
        if key == "trainer":
            v = {k: x for k, x in v.items() if shared.get("trainer", {}).get(k, object()) != x}
            if v:
                own[key] = v
        elif v != given:
            own[key] = v
            if key in shared:
                shadows[key] = shared[key]
    return own, shadows


def _section(name: str, own: dict, shadows: dict) -> str:
    text = yaml.safe_dump({name: own}, sort_keys=False, allow_unicode=True).rstrip()
    lines = text.splitlines()
    for key, shared in shadows.items():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  {key}:"))
        lines[at] += f"  # shadows train.{key} ({shared!r}) for this stage"
    return "\n".join(lines)
