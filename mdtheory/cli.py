"""Shared command-line plumbing: one-line errors and exit status 2.

Every ``python -m mdtheory.*`` entry point builds its parser with
:class:`OneLineParser` and wraps its body in :func:`run_cli`, so bad input
never prints a traceback or a multi-line usage block, and never leaves
half-written output behind (writers use :func:`atomic_write_text`).

Writers leave a file untouched when its content would not change (and, for
result files, when only the provenance record would), so regenerating the
same numbers gives no diff and no new modification time.

Settings are dataclass fields declared with :func:`setting` (default, help,
choices); :func:`add_config_arguments` turns every field into a flag and
:func:`config_from_args` builds the dataclass back, so a new field is a new
flag with no other edit.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import typing
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from .errors import OutputError, UserError

EXIT_USAGE = 2


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, unless its help text already
    names it or there is none to show (None, or False for a flag)."""

    @staticmethod
    def _has_default(action) -> bool:
        return (action.default is not None and action.default is not False
                and action.default is not argparse.SUPPRESS)

    def _get_help_string(self, action):
        text = action.help or ""
        if not self._has_default(action) or "default" in text.lower():
            return text
        return super()._get_help_string(action)

    def _format_action(self, action):
        if not action.help and self._has_default(action) and action.option_strings:
            action = copy.copy(action)
            action.help = "(default: %(default)s)"  # argparse skips options without help text
        return super()._format_action(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse parser whose errors are a single stderr line, exit 2, and
    whose ``--help`` shows the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def setting(default, help: str = "", **metadata):
    """A dataclass field that is also a command-line flag: ``--name-with-dashes``
    typed by the annotation, with ``help`` and optionally ``choices``,
    ``metavar`` or ``flag`` (another flag name) in its metadata."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def setting_of(cls, name: str, default, **metadata):
    """The setting ``name`` of dataclass ``cls`` with another default (and
    optionally other metadata): a subclass that shares a field, not its default."""
    return setting(default, **{**cls.__dataclass_fields__[name].metadata, **metadata})


def add_config_arguments(parser: argparse.ArgumentParser, cls, title: str,
                         defaults: dict | None = None) -> argparse._ArgumentGroup:
    """One flag per field of the dataclass ``cls``; ``defaults`` replaces the
    dataclass's defaults (per subcommand). A flag the parser already has
    (e.g. --seed of two configs) is shared. Flags not given stay out of the
    namespace, so :func:`config_from_args` tells a default from a choice.
    A bool field is a switch: ``--name`` if it defaults to False, else
    ``--no-name``. Returns the argument group, for flags of its own."""
    defaults = defaults or {}
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default, kind, meta = defaults.get(f.name, f.default), hints[f.name], f.metadata
        name = meta.get("flag", f.name.replace("_", "-"))
        kw = {"dest": f.name, "default": argparse.SUPPRESS}
        if kind is bool:
            name = f"no-{name}" if default else name
            kw["action"] = "store_false" if default else "store_true"
        else:
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            if typing.get_origin(kind) is tuple:
                kw.update(nargs=len(args), type=args[0])
            else:
                kw["type"] = args[0] if args else kind
            kw.update({k: meta[k] for k in ("choices", "metavar") if k in meta})
        if f"--{name}" in parser._option_string_actions:
            continue
        text = meta.get("help", "")
        if default not in (None, dataclasses.MISSING) and not isinstance(default, bool):
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            text = f"{text} (default: {shown})".strip()
        group.add_argument(f"--{name}", help=text.replace("%", "%%"), **kw)
    return group


def config_from_args(cls, args: argparse.Namespace, **defaults):
    """``cls`` from the flags given (see :func:`add_config_arguments`), then
    ``defaults``, then the dataclass's own defaults."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**defaults, **given})


def fail(message: str) -> NoReturn:
    """Print one line (newlines folded) to stderr and exit with status 2."""
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"error: {one_line}\n")
    sys.exit(EXIT_USAGE)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv=None) -> int:
    """Run ``main(argv)``; map UserError (and KeyboardInterrupt) to exits."""
    try:
        code = main(argv)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return int(code or 0)


def umask_mode(base: int = 0o666) -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``base``
    less this process's umask (read from /proc, so it is never changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)  # no /proc: read it by setting it, then put it back
        os.umask(umask)
    return base & ~umask


def temp_prefix(path: str | os.PathLike) -> str:
    """Start of the name of a temporary sibling of ``path`` written by this
    process: ``.<name>.<pid>.``; the pid tells a stale one (its writer died)
    from one being written."""
    return f".{Path(path).name}.{os.getpid()}."


def write_failed(path, exc: BaseException) -> OutputError:
    """One line for an output that could not be written (disk full, ...)."""
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    return OutputError(f"cannot write {path}: {reason}", getattr(exc, "errno", None), reason, str(path))


def atomic_write_text(path: str | os.PathLike, text: str) -> bool:
    """Write a file via a temporary sibling and rename, so readers never see
    a half-written file even if the process is killed mid-write.

    A file that already holds exactly ``text`` is left alone (same bytes,
    same modification time, so make sees nothing new). The new file gets the
    mode a plain write would (0o666 less the umask), not mkstemp's 0o600.
    A failed write (disk full, no permission) leaves the old file as it was
    and raises an OutputError naming ``path`` (an OSError too). Returns
    whether the file was written.
    """
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass  # missing, unreadable or not text: write it
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), umask_mode())
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        if isinstance(exc, OutputError):
            raise
        raise write_failed(path, exc) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    return True


def _remove_quietly(path) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


# Keys that mdtheory.provenance.provenance() writes (spread at the top level of
# a provenance file, or nested under "provenance" in a result file).
PROVENANCE_KEYS = frozenset({"provenance", "git_commit", "git_dirty", "python", "platform",
                             "packages", "created_utc", "device"})


def _without_provenance(obj):
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if k not in PROVENANCE_KEYS}
    return obj


def atomic_write_json(path: str | os.PathLike, obj, *,
                      keep_provenance_if_unchanged: bool = False) -> bool:
    """Write ``obj`` as JSON (atomically; identical content is not rewritten).

    With ``keep_provenance_if_unchanged``, an existing file that differs only
    in its provenance (timestamp, commit, dirty flag, versions) is kept as it
    is: the record of what produced these numbers is still true. Returns
    whether the file was written.
    """
    if keep_provenance_if_unchanged:
        try:
            old = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None  # missing or corrupt: write it
        # round-trip so tuples/ints compare as they would read back
        new = json.loads(json.dumps(obj))
        if old is not None and _without_provenance(old) == _without_provenance(new):
            return False
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def file_digests(paths) -> dict[str, str]:
    """{file name: sha256} of the files a provenance record describes, so the
    record changes exactly when one of them does."""
    return {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for p in sorted(paths, key=lambda p: Path(p).name)}


def write_provenance_json(path: str | os.PathLike, record: dict, describes=()) -> bool:
    """Write a provenance file for the output files ``describes``: rewritten
    only when those files (or the record's non-provenance fields) changed."""
    return atomic_write_json(path, {**record, "outputs_sha256": file_digests(describes)},
                             keep_provenance_if_unchanged=True)


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse, before any work is done, an output file path that cannot be
    written: a directory, or a folder that cannot be created or written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory, expected a file path")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {path}: {existing} is a file, not a folder")
    try:  # the writer creates the parent folders anyway; creating them now tests them
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder of {option} {path}: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{option} {path} is not writable")
    return path


def check_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` (with parents) or refuse it in one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {option} folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{option} folder {path} is not writable")
    return path
