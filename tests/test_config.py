import pytest

from pipeline.config import help_rows, load_config
from pipeline.errors import ConfigError


def test_defaults_are_the_embedded_demo():
    cfg = load_config()
    assert cfg.models.policy == cfg.models.judge == "transformers:smollm2-135m"
    assert cfg.generate.samples == 2 and cfg.critique.rounds == 2
    assert cfg.blend.human_share == pytest.approx(0.3)


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
