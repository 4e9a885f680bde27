"""The Python API: its docstring example runs as written (scripted models), and `import cai`
stays light."""

import doctest
import subprocess
import sys

from cai import api


def test_the_api_example_runs(fake_backend, tmp_path, monkeypatch):
    from conftest import ROOT

    from cai import log
    monkeypatch.chdir(ROOT)  # the default constitution: the checkout's principles.yaml
    # as a library cai has no terminal handler (an earlier `cai` command in this process added one)
    monkeypatch.setattr(log.logger, "handlers", [])
    monkeypatch.setattr(log.logger, "propagate", True)
    monkeypatch.setattr(log, "_console", None)
    globs = {"run_dir": str(tmp_path / "run"), "policy": "fake:policy", "judge": "fake:judge"}
    result = doctest.testmod(api, extraglobs=globs, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_import_cai_loads_no_heavy_library():
    code = ("import sys, cai; cai.load_config; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
