"""`cai check` and `cai schema`: a constitution validated without models, what an edit changes,
and a JSON Schema editors can use."""

import json
import subprocess
import sys

import jsonschema
import yaml
from conftest import ROOT, small_config

from cai.constitution.schema import json_schema
from cai.runs.check import check, format_check

DEFAULT = (ROOT / "principles.yaml").read_text()


def test_check_the_default_lists_every_principle_with_its_share():
    out = subprocess.run([sys.executable, "-m", "cai.cli", "check"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "principles.yaml: valid: 'cai-default'" in out.stdout
    for pid in yaml.safe_load(DEFAULT)["principles"]:
        assert pid["id"] in out.stdout


def test_check_shows_what_an_edit_changed_since_the_last_run(fake_backend, tmp_path):
    from cai.runs.runner import run_stages
    from cai.stages import DATA_STAGES
    cfg = small_config(tmp_path / "run")
    assert check(cfg)["since_last_run"] is None
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    assert check(cfg)["since_last_run"] == {"run": 1, "changed": [], "added": [], "removed": []}
    data = yaml.safe_load(DEFAULT)
    data["principles"][4]["critique"] += " Also consider metadata."   # privacy: text changed
    data["principles"][5]["weight"] = 3.0                           # deception: weight only
    data["principles"].append({**data["principles"][0], "id": "new-one"})
    removed = data["principles"].pop(1)["id"]
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(data))
    result = check(cfg, str(edited))
    assert result["since_last_run"] == {"run": 1, "changed": ["privacy"], "added": ["new-one"],
                                         "removed": [removed]}
    shares = {p["id"]: p["critique_share"] for p in result["principles"]}
    assert shares["deception"] > 2 * shares["manipulation"]  # weight 3 vs 1
    text = format_check(result)
    assert "1 changed, 1 new, 1 removed (violence)" in text and "new-one" in text


def test_the_published_schema_is_current_and_checks_edits():
    published = json.loads((ROOT / "constitution" / "principles.schema.json").read_text())
    assert published == json_schema()  # regenerate with: cai schema > constitution/principles.schema.json
    assert DEFAULT.startswith("# yaml-language-server: $schema=./constitution/principles.schema.json")
    jsonschema.validate(yaml.safe_load(DEFAULT), published)
    for edit in ({"weight": -1}, {"colour": "red"}, {"id": "Not A Slug"}, {"tags": []},
                 {"critique": "x" * 9000}):
        data = yaml.safe_load(DEFAULT)
        data["principles"][0].update(edit)
        try:
            jsonschema.validate(data, published)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"the schema accepted {edit}")
