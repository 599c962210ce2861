"""The figures entry point: bad --out and corrupt inputs are one line and
exit 2; drawing prints no stray warnings; unchanged figures are not rewritten."""
import logging
import os

import pytest

from mdtheory.cli import run_cli
from mdtheory.plots.__main__ import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    return exc.value.code, capsys.readouterr()


@pytest.mark.parametrize("out", ["afile", "afile/sub", "/proc/x"])
def test_bad_out_is_one_line_exit_2(tmp_path, capsys, out):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "results").mkdir()
    target = out if out.startswith("/") else str(tmp_path / out)
    code, cap = _run(["--results", str(tmp_path / "results"), "--out", target,
                      "--only", "theory_regime_diagram"], capsys)
    assert code == 2 and len(cap.err.strip().splitlines()) == 1 and "Traceback" not in cap.err
    assert cap.out == ""  # refused before drawing anything
    assert (tmp_path / "afile").read_text() == "not a folder"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"weights": {"x": 1}}', b"\xff\xfe"])
def test_corrupt_predicted_t_is_one_line_exit_2(tmp_path, capsys, content):
    (tmp_path / "results" / "lm").mkdir(parents=True)
    (tmp_path / "results" / "lm" / "predicted_t.json").write_bytes(content)
    code, cap = _run(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "fig"),
                      "--only", "theory_mixture_signal"], capsys)
    assert code == 2 and len(cap.err.strip().splitlines()) == 1
    assert "predicted_t.json is corrupt" in cap.err


def test_drawing_is_quiet_and_unchanged_figures_stay_untouched(tmp_path, capsys, caplog):
    results, fig = tmp_path / "results", tmp_path / "fig"
    results.mkdir()
    argv = ["--results", str(results), "--out", str(fig), "--only", "theory_regime_diagram"]
    assert run_cli(main, argv) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    # fontTools warns "'created' timestamp seems very low" for matplotlib's own fonts
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    pdf, png = fig / "theory_regime_diagram.pdf", fig / "theory_regime_diagram.png"
    for path in (pdf, png):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert run_cli(main, argv) == 0
    assert pdf.stat().st_mtime == 1_000_000_000 and png.stat().st_mtime == 1_000_000_000
