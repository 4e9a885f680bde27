"""The constitution as users write it: YAML merge keys, line numbers that match editors and
grep after Unicode line separators, tags that cannot pass for other tags, a principle's
misspelt tag, and paths that are not regular files (a FIFO, /dev/zero) — each one line, at once,
in `cai check` and in the run alike."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, cai

from cai.constitution import ConstitutionError, load_constitution, parse_constitution

PRINCIPLES = """name: t
version: '1'
system: "s"
principles:
  - &base
    id: a
    critique: c
    revision: r
    comparison: q
    tags: [harmlessness]
  - <<: *base
    id: b
    weight: 2
"""


def test_merge_keys_are_defaults_the_principle_overrides():
    c = parse_constitution(PRINCIPLES, "m.yaml")
    assert [(p.id, p.critique, p.weight) for p in c.principles] == [("a", "c", 1.0), ("b", "c", 2.0)]
    # the real mistake in a merged principle is named, not a false "duplicate key 'id'"
    with pytest.raises(ConstitutionError, match=r"^m.yaml:13: principle 'b': unknown key 'wieght'"):
        parse_constitution(PRINCIPLES.replace("weight: 2", "wieght: 2"), "m.yaml")
    with pytest.raises(ConstitutionError, match="duplicate key 'id'"):
        parse_constitution(PRINCIPLES + "    id: c\n", "m.yaml")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\r"])
def test_line_numbers_count_newlines_as_editors_and_grep_do(separator):
    text = PRINCIPLES.replace('system: "s"', f'system: "s{separator}t"').replace(
        "critique: c", f'critique: "c{separator}d"').replace("weight: 2", "wieght: 2")
    grep_line = text[:text.index("wieght")].count("\n") + 1
    with pytest.raises(ConstitutionError) as e:
        parse_constitution(text, "m.yaml")
    assert e.value.line == grep_line == 13


@pytest.mark.parametrize("tag", ["harm\u200blessness", "h\u0430rmlessness", "Harmlessness", "harm lessness"])
def test_a_tag_that_could_pass_for_another_is_refused(tag):
    with pytest.raises(ConstitutionError, match=r"^m.yaml:10: principle 'a': 'tags' item 1 must be a slug"):
        parse_constitution(PRINCIPLES.replace("tags: [harmlessness]", f'tags: ["{tag}"]'), "m.yaml")


def _misspelt(tmp_path):
    text = (ROOT / "principles.yaml").read_text(encoding="utf-8")
    first = text.index("tags: [harmlessness]")
    f = tmp_path / "typo.yaml"
    f.write_text(text[:first] + "tags: [harmlesness]" + text[first + 20:], encoding="utf-8")
    return f, text[:first].count("\n") + 1


def test_a_principles_misspelt_tag_stops_check_and_run_at_its_line(tmp_path, fake_backend):
    f, line = _misspelt(tmp_path)
    for args in (["check"], ["run", "--to", "generate"], ["plan"]):
        code, _, err = cai(tmp_path / "run", *args, sets=[f"constitution={f}"])
        assert code == 2 and err.count("\n") == 1, (args, err)
        assert "has tag 'harmlesness', one letter from label.tags's 'harmlessness'" in err
        assert err.startswith(f"cai: error: {f}:") and int(err.split(":")[3]) <= line
    assert not (tmp_path / "run" / "cai.sqlite").exists()  # stopped before anything was written


def test_a_fifo_or_an_endless_device_is_refused_at_once(tmp_path):
    fifo = tmp_path / "principles.yaml"
    os.mkfifo(fifo)
    endless = tmp_path / "zero.yaml"
    endless.symlink_to("/dev/zero")
    for path in (fifo, endless):
        # in a child process with a deadline: before the fix the FIFO hung, /dev/zero ate memory
        out = subprocess.run([sys.executable, "-c", "import sys; from cai.constitution import "
                              "load_constitution as l, ConstitutionError as E\ntry: l(sys.argv[1])\n"
                              "except E as e: print(e)", str(path)],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.stdout.strip() == f"{path}: is not a regular file (a pipe, device or socket); " \
            "give a YAML file", out.stderr
    with pytest.raises(ConstitutionError, match="is a directory"):
        load_constitution(tmp_path)
