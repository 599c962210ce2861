"""One paper style for every figure: seaborn, a colour-blind palette, fixed
sizes for a one- and a two-column layout, vector PDF plus a PNG preview.

Every figure function in this package returns a matplotlib Figure (or raises
:class:`MissingData`); :func:`save_figure` writes it. Nothing here reads
results or computes numbers.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

# Widths in inches: one column of a two-column paper, and the full text width.
COLUMN_WIDTH = 3.4
FULL_WIDTH = 7.0
GOLDEN = 0.62

# Embedding a TrueType font (pdf.fonttype 42) makes fontTools read the head
# table of matplotlib's bundled DejaVu fonts, whose creation date is 0; it then
# warns "'created' timestamp seems very low" on every run. Harmless for us.
logging.getLogger("fontTools.ttLib.tables._h_e_a_d").setLevel(logging.ERROR)

PALETTE = sns.color_palette("colorblind")
PNG_DPI = 200


class MissingData(Exception):
    """A figure's result files are absent; the figure is skipped, never faked."""


def apply_style() -> None:
    """Set the shared look (call once before drawing)."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE)
    plt.rcParams.update(
        {
            "font.size": 8,
            "axes.titlesize": 8,
            "axes.labelsize": 8,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "legend.fontsize": 6.5,
            "legend.title_fontsize": 7,
            "legend.frameon": True,
            "legend.framealpha": 0.85,
            "lines.linewidth": 1.2,
            "lines.markersize": 3.5,
            "axes.linewidth": 0.6,
            "grid.linewidth": 0.4,
            "pdf.fonttype": 42,  # embed TrueType, editable text in the PDF
            "ps.fonttype": 42,
            "savefig.bbox": "tight",
            "savefig.pad_inches": 0.02,
            "figure.constrained_layout.use": True,
        }
    )


def figure(width: str = "column", aspect: float = GOLDEN, ncols: int = 1, nrows: int = 1, **kwargs):
    """A new figure at a paper width ('column' or 'full'); returns (fig, axes).

    ``aspect`` is the height of one row of panels over the figure width."""
    if width not in ("column", "full"):
        raise ValueError(f"width must be 'column' or 'full', got {width!r}")
    w = COLUMN_WIDTH if width == "column" else FULL_WIDTH
    h = w * aspect * nrows  # aspect is per row of panels
    kwargs.setdefault("squeeze", False)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), **kwargs)
    return fig, axes


def colours(n: int):
    """n distinguishable colour-blind-safe colours (cycled past the palette)."""
    return [PALETTE[i % len(PALETTE)] for i in range(n)]


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _atomic_savefig(fig, path: Path, **kwargs) -> None:
    """Render to a temporary sibling, then rename; an existing file with the
    same bytes is left alone, so make sees nothing new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format=path.suffix.lstrip("."), **kwargs)
        if _same_bytes(Path(tmp), path):
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_figure(fig, out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write ``name.pdf`` (vector, for the paper) and ``name.png`` (preview)."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    # Fixed metadata so re-rendering the same data gives the same PDF bytes.
    _atomic_savefig(fig, paths[0], metadata={"CreationDate": None, "Creator": "mdtheory"})
    _atomic_savefig(fig, paths[1], dpi=PNG_DPI)
    plt.close(fig)
    return paths
