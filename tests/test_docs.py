"""The docs: the README short and true (its commands, pictures and TRL snippet), the generated
reference pages current (config keys, every command's --help), and the site building strict."""

import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, small_config

from cai.cli.reference import PAGES, stale

README = (ROOT / "README.md").read_text()


def test_readme_is_short_and_has_what_it_promises():
    assert len(README.splitlines()) <= 250
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = re.findall(r"```bash\n(python3 -m venv[^\n]*pytest -q)\n```", README)
    assert test_command and test_command[0] in ci  # CI runs the README's test command exactly
    assert re.search(r"```bash\npython3 -m venv .*&& cai run\n```", README)
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        assert (ROOT / image).exists(), image
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / link).exists(), link


def test_generated_reference_pages_are_current():
    assert stale(ROOT) == [], "run `python -m cai.cli.reference`"
    assert set(PAGES) == {"docs/reference/config.md", "docs/reference/commands.md"}


def test_the_docs_site_builds_strict(tmp_path):
    if shutil.which("mkdocs") is None and subprocess.run(
            [sys.executable, "-m", "mkdocs", "--version"], capture_output=True).returncode:
        pytest.skip("mkdocs is not installed (extra `dev`)")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                         env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "site" / "reference" / "commands" / "index.html").exists()


def test_the_readme_trl_snippet_trains_on_an_export(tmp_path, tiny_model_dir, fake_backend,
                                                     monkeypatch):
    """The snippet as written, on a scripted run's export, with the tiny model and one step."""
    from cai.runs.runner import run_stages
    from cai.stages import DATA_STAGES
    run_stages(small_config(tmp_path / "run"), DATA_STAGES, echo=lambda s: None)
    code = re.search(r"## Train on the export with TRL.*?```python\n(.*?)```", README, re.S).group(1)
    assert len(code.strip().splitlines()) <= 7
    code = (code.replace('"HuggingFaceTB/SmolLM2-135M-Instruct"', repr(str(tiny_model_dir)))
                .replace('"outputs/default/dataset/prefs"', repr(str(tmp_path / "run/dataset/prefs")))
                .replace('DPOConfig(output_dir="dpo")', f'DPOConfig(output_dir={str(tmp_path / "dpo")!r}, '
                         'max_steps=1, use_cpu=True, report_to="none", bf16=False)'))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["trainer"].state.global_step == 1
