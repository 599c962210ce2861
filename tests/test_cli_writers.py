"""Writers that leave unchanged files alone, and --help that shows defaults."""
import json
import os

import pytest

from mdtheory.cli import (OneLineParser, atomic_write_json, atomic_write_text, check_output_dir,
                          check_output_file, write_provenance_json)
from mdtheory.errors import UserError

OLD = 1_000_000_000  # a modification time far in the past


def _age(path):
    os.utime(path, (OLD, OLD))


def test_identical_text_is_not_rewritten(tmp_path):
    path = tmp_path / "a.tex"
    assert atomic_write_text(path, "x = 1\n") is True
    _age(path)
    assert atomic_write_text(path, "x = 1\n") is False
    assert path.stat().st_mtime == OLD  # make sees nothing new
    assert atomic_write_text(path, "x = 2\n") is True
    assert path.read_text() == "x = 2\n" and path.stat().st_mtime != OLD


def test_provenance_only_change_keeps_the_file(tmp_path):
    path = tmp_path / "r.json"
    first = {"t_star": 0.461, "provenance": {"created_utc": "2020-01-01", "git_dirty": False}}
    atomic_write_json(path, first, keep_provenance_if_unchanged=True)
    _age(path)
    later = {"t_star": 0.461, "provenance": {"created_utc": "2030-01-01", "git_dirty": True}}
    assert atomic_write_json(path, later, keep_provenance_if_unchanged=True) is False
    assert json.loads(path.read_text()) == first and path.stat().st_mtime == OLD
    # without the option, or with a changed number, the file is rewritten
    changed = {"t_star": 0.5, "provenance": {"created_utc": "2030-01-01"}}
    assert atomic_write_json(path, changed, keep_provenance_if_unchanged=True) is True
    assert json.loads(path.read_text()) == changed


def test_top_level_provenance_fields_are_ignored_too(tmp_path):
    path = tmp_path / "p.json"
    atomic_write_json(path, {"runs": 3, "git_commit": "a", "created_utc": "1"}, keep_provenance_if_unchanged=True)
    assert not atomic_write_json(path, {"runs": 3, "git_commit": "b", "created_utc": "2"},
                                 keep_provenance_if_unchanged=True)
    assert atomic_write_json(path, {"runs": 4, "git_commit": "b"}, keep_provenance_if_unchanged=True)


def test_corrupt_existing_file_is_replaced(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{not json")
    assert atomic_write_json(path, {"a": 1}, keep_provenance_if_unchanged=True)
    assert json.loads(path.read_text()) == {"a": 1}


def test_provenance_file_follows_the_files_it_describes(tmp_path):
    data, prov = tmp_path / "summary.csv", tmp_path / "provenance.json"
    data.write_text("a,b\n1,2\n")
    write_provenance_json(prov, {"runs": 1, "created_utc": "1"}, describes=[data])
    _age(prov)
    assert not write_provenance_json(prov, {"runs": 1, "created_utc": "2"}, describes=[data])
    assert prov.stat().st_mtime == OLD
    data.write_text("a,b\n1,3\n")  # same run count, different numbers: a new record
    assert write_provenance_json(prov, {"runs": 1, "created_utc": "3"}, describes=[data])
    assert json.loads(prov.read_text())["created_utc"] == "3"


def test_output_path_checks(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a directory"):
        check_output_file(tmp_path, "--out")
    with pytest.raises(UserError, match="afile is a file, not a folder"):
        check_output_file(tmp_path / "afile" / "sub" / "x.json", "--out")
    with pytest.raises(UserError, match="cannot create"):
        check_output_file("/proc/x/y.json", "--out")
    with pytest.raises(UserError, match="afile exists and is not a folder"):
        check_output_dir(tmp_path / "afile", "--out")
    assert check_output_dir(tmp_path / "new" / "sub").is_dir()
    assert check_output_file(tmp_path / "new2" / "x.json").parent.is_dir()


def test_help_shows_every_default():
    p = OneLineParser(prog="t")
    p.add_argument("--corpus", default="shakespeare")                   # no help text at all
    p.add_argument("--steps", type=int, default=200, help="steps to train")
    p.add_argument("--out", default="runs/x", help="output (default runs/x)")  # already says it
    p.add_argument("--quiet", action="store_true", help="say less")
    p.add_argument("--seed", type=int, default=None, help="a seed")
    text = " ".join(p.format_help().split())
    assert "(default: shakespeare)" in text and "steps to train (default: 200)" in text
    assert text.count("runs/x") == 1  # named once, not repeated
    assert "(default: False)" not in text and "(default: None)" not in text


@pytest.mark.parametrize("module", ["mdtheory.derive.ngram", "mdtheory.derive.__main__"])
def test_derive_parsers_show_defaults(module):
    import importlib
    text = " ".join(importlib.import_module(module).build_parser().format_help().split())
    assert "default" in text.lower()
    if module.endswith("ngram"):
        assert "(default: shakespeare)" in text and "results/" not in text  # the caller names the file
