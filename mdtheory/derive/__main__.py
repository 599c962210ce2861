"""python -m mdtheory.derive: closed forms of the k-parity MD theory.

    python -m mdtheory.derive --k 6 --json
    python -m mdtheory.derive --k 2 3 4 --window 0 0.2 --n 20 --delta 0.05 --json
    python -m mdtheory.derive --k 6 --window 0 0.2          (readable report)
    python -m mdtheory.derive --latex paper/generated       (LaTeX macros + formulas)
    python -m mdtheory.derive ngram ...                      (dependency weights of a corpus)

Bad input gives one line on stderr, exit status 2 and nothing on stdout.
"""
from __future__ import annotations

import json
import math
import sys

from ..cli import OneLineParser, check_output_dir, check_output_file, run_cli
from ..errors import UserError
from ..theory import numeric as num
from .quantities import derive_record


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


_integer.__name__ = "integer"
_number.__name__ = "number"


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog="python -m mdtheory.derive",
        description="Closed forms of the masked-diffusion k-parity theory (Huang & Mirzasoleiman, "
                    "arXiv:2601.22450): P_S, P_N, optimal mask rates and windows, the "
                    "identifiability bound. First argument 'ngram' runs the corpus-weights tool.")
    p.add_argument("--k", type=_integer, nargs="+", default=[6], metavar="K",
                   help="parity order(s), integers >= 1 (default 6); several give a JSON list")
    p.add_argument("--window", type=_number, nargs=2, metavar=("T0", "T1"),
                   help="mask-rate window t ~ U[T0, T1], 0 <= T0 <= T1 <= 1 (T0 = T1: point mass)")
    p.add_argument("--n", type=_integer, help="number of input bits (>= k) for the bound N_bound "
                   "(over the window, or U[0,1] without --window)")
    p.add_argument("--delta", type=_number, help="failure probability in (0, 1) for N_bound "
                   "(default 0.05; needs --n)")
    p.add_argument("--json", action="store_true", help="print JSON (one object, or a list for several k)")
    p.add_argument("--latex", metavar="DIR", help="write DIR/theory.tex (macros) and DIR/theory_formulas.tex")
    p.add_argument("--provenance", metavar="FILE",
                   help="also write a provenance record (JSON) to FILE; it names the sha256 of what "
                        "was printed and is left untouched while that output stays the same")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ngram":
        from . import ngram
        return ngram.main(argv[1:])

    args = build_parser().parse_args(argv)
    for k in args.k:
        num.check_k(k)
    window = num.check_window(*args.window) if args.window is not None else None
    if args.delta is not None and args.n is None:
        raise UserError("--delta needs --n")
    delta = 0.05 if args.delta is None else args.delta
    if not 0.0 < delta < 1.0:
        raise UserError(f"delta must lie in (0, 1), got {delta}")
    if args.n is not None and args.n < max(args.k):
        raise UserError(f"need n >= k, got n={args.n} and k={max(args.k)}")
    if args.provenance:
        check_output_file(args.provenance, "--provenance")
    if args.latex is not None:
        check_output_dir(args.latex, "--latex")

    # compute everything before printing or writing, so errors leave nothing behind
    records = [derive_record(k, window, args.n, delta) for k in args.k]
    if args.json:
        out = json.dumps(records[0] if len(records) == 1 else records, indent=2) + "\n"
    elif args.latex is None:
        from .report import text_report
        out = text_report(args.k, window, args.n, delta)
    else:
        out = ""
    numbers = out  # what the provenance record vouches for (not the "wrote ..." lines)
    if args.latex is not None:
        from .latex import write_latex
        try:
            written = write_latex(args.latex)
        except OSError as exc:
            raise UserError(f"cannot write LaTeX to {args.latex}: {exc}") from None
        if not args.json:
            out += "".join(f"wrote {path}\n" if changed else f"{path} unchanged\n"
                           for path, changed in written.items())
    if args.provenance:
        from ..provenance import write_provenance_record
        try:
            write_provenance_record(args.provenance, ["python", "-m", "mdtheory.derive", *argv], numbers)
        except OSError as exc:
            raise UserError(f"cannot write --provenance {args.provenance}: {exc.strerror or exc}") from None
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
