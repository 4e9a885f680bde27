"""The command as a user meets it: `cai --help` in pipeline order under headings, a stage's help
naming its method and keys, -q/-v, and the log every run directory keeps."""

from click.testing import CliRunner
from conftest import cai

from cai.cli import cli
from cai.cli.group import SECTIONS


def _help(*args) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_commands_by_section_in_pipeline_order():
    out = _help()
    at = [out.index(title + ":") for title in SECTIONS]
    assert at == sorted(at)
    stages = out[at[0]:at[1]]
    names = [line.split()[0] for line in stages.splitlines()[1:] if line.startswith("  ") and
             not line.startswith("    ")]
    assert names == ["run", "generate", "critique", "label", "calibrate", "pairs", "blend", "export",
                     "train-sft", "train-rm", "train-policy", "evaluate"]


def test_a_stage_help_names_its_method_and_most_used_keys():
    out = _help("train-policy")
    text = " ".join(out.split())
    assert "Method: train_policy.method, one of dpo, kto, orpo, grpo, rloo, ppo." in text
    assert "train_policy.beta = 0.1:" in text and "train.epochs = sft 1.0, rm 1.0, policy 0.34:" in text
    assert "--push-to-hub ORG/NAME" in text


def test_quiet_verbose_and_the_run_log(tmp_path, fake_backend):
    code, out, _ = cai(tmp_path / "q", "-q", "run", "--to", "generate")
    assert code == 0 and out == ""
    log = (tmp_path / "q" / "cai.log").read_text()
    assert " INFO generate " in log and "model calls" in log  # the full story is kept anyway
    code, out, _ = cai(tmp_path / "n", "run", "--to", "generate")
    assert out.startswith("generate ") and "asked" not in out
    code, out, _ = cai(tmp_path / "v", "-v", "run", "--to", "generate")
    assert "requests: 0 stored, 12 asked" in out and "a batch of" in out


def test_every_stage_help_key_is_a_config_key():
    from cai.cli.stages import KEYS
    from cai.config.reference import help_rows
    keys = {k for k, _, _ in help_rows()}
    assert [k for names in KEYS.values() for k in names if k not in keys] == []
