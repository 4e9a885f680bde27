import re

import pytest

from cai.config.reference import help_rows
from cai.config.run import RunConfig, load_config
from cai.errors import ConfigError


def test_defaults_are_the_embedded_demo():
    cfg = load_config()
    assert cfg.models.policy == cfg.models.judge == "transformers:smollm2-135m"
    assert cfg.generate.samples == 2 and cfg.critique.rounds == 1
    assert cfg.blend.human_weight == pytest.approx(1.0) and cfg.calibration.use_trust


def test_yaml_then_flags(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("seed: 7\ngenerate:\n  samples: 3\n")
    cfg = load_config(f, ["generate.samples=5", "critique.tags=[harmlessness]"])
    assert cfg.seed == 7 and cfg.generate.samples == 5 and cfg.critique.tags == ["harmlessness"]


def test_unknown_key_names_file_and_nearest_key(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("generate:\n  sampels: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert str(e.value) == f"{f}: unknown config key 'generate.sampels' (did you mean 'samples'?)"


def test_bad_value_and_bad_override():
    with pytest.raises(ConfigError, match="generate.samples"):
        load_config(None, ["generate.samples=many"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["generate.samples"])


def test_not_yaml(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: not valid YAML"):
        load_config(f)


def test_every_key_has_help():
    rows = help_rows()
    assert len(rows) > 40 and all(desc for _, _, desc in rows)


def test_shipped_configs_are_valid():
    from conftest import ROOT
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_shipped_accelerate_configs_load_in_accelerate():
    """configs/accelerate/*.yaml are read by accelerate's own loader (DDP, FSDP, ZeRO-3)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from conftest import ROOT
    kinds = {p.stem: str(load_config_from_file(str(p)).distributed_type)
             for p in (ROOT / "configs" / "accelerate").glob("*.yaml")}
    assert kinds == {"ddp": "DistributedType.MULTI_GPU", "fsdp": "DistributedType.FSDP",
                     "deepspeed_zero3": "DistributedType.DEEPSPEED"}


def test_train_keys_are_shared_and_a_stage_overrides_them():
    cfg = load_config(None, ["train.epochs=2", "train_rm.epochs=3", "train.learning_rate=1e-4"])
    assert (cfg.train_sft.epochs, cfg.train_rm.epochs, cfg.train_policy.epochs) == (2, 3, 2)
    assert cfg.train_sft.learning_rate == cfg.train_rm.learning_rate == 1e-4
    default = load_config()
    assert (default.train_sft.learning_rate, default.train_rm.lora) == (2e-5, False)
    with pytest.raises(ConfigError, match="'train.epochs': Input should be greater than 0"):
        load_config(None, ["train.epochs=0"])
    # listed once: as train.<knob>, not again under each stage
    keys = [k for k, _, _ in help_rows()]
    assert "train.epochs" in keys and "train_rm.epochs" not in keys and "train_rm.use_margin" in keys


@pytest.mark.parametrize("key,value,says", [
    ("iterations.min_gain", ".nan", "finite number"),  # would disable the stop rule silently
    ("train_policy.learning_rate", "inf", "finite number"),
    ("blend.human_weight", "-inf", "finite number"),
    ("iterations.count", "1000000000", "less than or equal to 100"),  # a plan row per iteration
])
def test_nan_inf_and_absurd_counts_are_one_line_errors(key, value, says):
    with pytest.raises(ConfigError, match=f"config key '{re.escape(key)}': .*{says}"):
        load_config(None, [f"{key}={value}"])


def _int_keys(model=RunConfig, prefix=""):
    """(key, field) of every whole-number setting, recursively."""
    import typing

    from pydantic import BaseModel
    for name, f in model.model_fields.items():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            yield from _int_keys(f.annotation, f"{prefix}{name}.")
        elif int in (typing.get_args(f.annotation) or (f.annotation,)):
            yield f"{prefix}{name}", f


INT_KEYS = [(k, f) for k, f in _int_keys() if not (f.json_schema_extra or {}).get("internal")]


@pytest.mark.parametrize("key,field", INT_KEYS, ids=[k for k, _ in INT_KEYS])
def test_every_count_has_an_upper_bound_and_past_it_is_one_line(key, field):
    """A count of 10**9 (iterations, samples, rounds...) built a row per unit until memory ran
    out; every whole-number key is bounded, and past the bound is one line naming the key."""
    [bound] = [m.le for m in field.metadata if hasattr(m, "le")]
    load_config(None, [f"{key}={bound}"])
    with pytest.raises(ConfigError, match=rf"^defaults: config key '{key}': Input should be less "
                                          rf"than or equal to {bound} \(got {bound + 1}\)$"):
        load_config(None, [f"{key}={bound + 1}"])


@pytest.mark.parametrize("key", ["iterations.current=2", "iterations.root=/elsewhere"])
def test_the_keys_cai_sets_for_itself_are_not_settable(key, tmp_path):
    with pytest.raises(ConfigError, match="is set by cai for each iteration"):
        load_config(None, [key])
    f = tmp_path / "run.yaml"
    f.write_text("iterations:\n  " + key.replace("iterations.", "").replace("=", ": ") + "\n")
    with pytest.raises(ConfigError, match=rf"^{f}: config key 'iterations\.(current|root)'"):
        load_config(f)


def test_a_dumped_config_loads_again(tmp_path):
    """`cai config > my.yaml` and a run's config.yaml name no key cai sets for itself."""
    import yaml
    cfg = load_config(None, ["iterations.count=3"])
    internal = cfg.iterations.model_copy(update={"current": 2, "root": "/runs/x"})
    dumped = cfg.model_copy(update={"iterations": internal}).settable()
    assert "current" not in dumped["iterations"] and "root" not in dumped["iterations"]
    f = tmp_path / "dumped.yaml"
    f.write_text(yaml.safe_dump(dumped))
    assert load_config(f).iterations.count == 3


def test_each_ray_actor_gets_its_share_of_the_servers():
    """No Ray needed: how `engine: ray` splits `openai:` servers among its actors."""
    from cai.config.run import load_config
    from cai.engines.ray_engine import share
    urls = [f"http://gpu{k}:8000/v1" for k in range(5)]
    cfg = load_config(None, [f"openai.base_urls=[{','.join(urls)}]"])
    shares = [share(cfg, i, 2).openai.base_urls for i in range(2)]
    assert shares == [urls[0::2], urls[1::2]]  # every server once, no two actors on one
    few = [share(cfg, i, 8).openai.base_urls for i in range(8)]
    assert all(sorted(s) == urls for s in few) and len({s[0] for s in few}) == 5
    own = load_config(None, [f"openai.model_base_urls={{judge: [{','.join(urls[:2])}]}}"])
    assert [share(own, i, 2, "judge").openai.model_base_urls["judge"] for i in range(2)] == \
        [urls[:1], urls[1:2]]


def test_a_dumped_and_edited_config_does_what_it_says(tmp_path):
    """`cai config > my.yaml`, then `train.epochs` edited: every training stage trains that long,
    but one whose own section sets it, which the dump marks beside the key."""
    import yaml

    from cai.config.dump import dump_yaml
    dumped = dump_yaml(load_config(None, ["train_sft.epochs=2"]))
    assert "epochs: 2.0  # shadows" not in dumped  # nothing to shadow yet
    data = yaml.safe_load(dumped)
    assert set(data["train_rm"]) == {"base", "depth", "use_margin", "ensemble", "aggregate", "penalty"}
    data["train"]["epochs"] = 3
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(data))
    edited = load_config(tmp_path / "my.yaml")
    assert (edited.train_sft.epochs, edited.train_rm.epochs, edited.train_policy.epochs) == (2, 3, 3)
    assert edited.train_sft.learning_rate == 2e-5  # the stage's own default still holds
    again = dump_yaml(edited)
    assert "  epochs: 2.0  # shadows train.epochs (3.0) for this stage" in again
    assert load_config(None, []).model_dump() == _reload(tmp_path, dump_yaml(load_config(None, [])))


def _reload(tmp_path, text):
    (tmp_path / "again.yaml").write_text(text)
    return load_config(tmp_path / "again.yaml").model_dump()
