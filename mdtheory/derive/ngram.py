"""``python -m mdtheory.derive ngram``: the corpus-predicted mask rate t*.

Estimates the dependency weights w_2..w_6 of a corpus's training split with
an explicitly defined estimator (``mdtheory.theory.ngram_weights``), turns
them into t* = argmax_t sum_i w_i t (1-t)^(i-1) (paper arXiv:2601.22450,
App. F.4) and writes a JSON file with

    weights           {"2": w_2, ..., "6": w_6} of the chosen estimator
    t_star            argmax of the linear signal
    t_star_squared    argmax when each order's signal counts quadratically
    estimator, min_count, corpus
    alternatives      every other estimator (and min_count 2 / 10) with its
                      weights and t*, and ``sensitivity``: the range of t*
    paper_wikitext    the paper's WikiText weights and their t* (0.463)
    provenance

Example::

    python -m mdtheory.derive ngram --corpus shakespeare
    python -m mdtheory.derive ngram --text-file my.txt --out my_t.json
"""
from __future__ import annotations

import sys

from ..cli import OneLineParser, atomic_write_json, check_output_file, run_cli
from ..data.corpus import CORPORA, load_corpus
from ..errors import UserError
from ..provenance import provenance
from ..theory import ngram_weights as nw
from ..theory.numeric import PAPER_WIKITEXT_WEIGHTS, mixture_argmax

ALT_MIN_COUNTS = (2, 5, 10)


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m mdtheory.derive ngram",
                      description="Estimate corpus dependency weights w_i and the predicted mask rate t*.")
    p.add_argument("--corpus", choices=CORPORA, default="shakespeare", help="corpus to read")
    p.add_argument("--text-file", default=None, help="any UTF-8 corpus (overrides --corpus)")
    p.add_argument("--estimator", choices=nw.ESTIMATORS, default="distinct-frequent",
                   help="dependency-weight estimator")
    p.add_argument("--min-count", type=int, default=5,
                   help="n-grams seen fewer times are dropped (paper: 5)")
    p.add_argument("--out", required=True, help="JSON output; left untouched when only its provenance would change")
    return p


def _entry(weights: dict[int, float]) -> dict:
    return {"weights": {str(i): round(w, 6) for i, w in weights.items()},
            "t_star": round(mixture_argmax(weights), 6),
            "t_star_squared": round(mixture_argmax(weights, squared=True), 6)}


def predict(corpus, estimator: str = "distinct-frequent", min_count: int = 5) -> dict:
    """The full result record (no file written)."""
    ids, vocab = nw.word_ids(corpus.train)
    chosen = _entry(nw.estimate_weights(ids, estimator, min_count=min_count))
    alternatives = {}
    for name in nw.ESTIMATORS:
        counts = ALT_MIN_COUNTS if name != "lag-mi" else (None,)
        for mc in counts:
            key = name if mc is None else f"{name}@min_count={mc}"
            try:
                alternatives[key] = _entry(nw.estimate_weights(ids, name, min_count=mc or min_count))
            except UserError as exc:  # e.g. no 6-gram reaches min_count 10 in a small corpus
                alternatives[key] = {"error": str(exc)}
    t_all = [a["t_star"] for a in alternatives.values() if "t_star" in a] + [chosen["t_star"]]
    return {
        **chosen,
        "estimator": estimator,
        "min_count": min_count,
        "corpus": {"name": corpus.name, "split": "train", "words": int(len(ids)),
                   "vocabulary": len(vocab), **{k: v for k, v in corpus.meta.items() if k != "plays"}},
        "alternatives": alternatives,
        "sensitivity": {"t_star_min": min(t_all), "t_star_max": max(t_all),
                        "t_star_range": round(max(t_all) - min(t_all), 6)},
        "paper_wikitext": _entry(PAPER_WIKITEXT_WEIGHTS),
        "provenance": provenance(),
    }


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.min_count < 1:
        raise UserError(f"--min-count must be >= 1, got {args.min_count}")
    check_output_file(args.out)  # before minutes of counting, not after
    corpus = load_corpus(args.corpus, text_file=args.text_file)
    result = predict(corpus, args.estimator, args.min_count)
    try:
        written = atomic_write_json(args.out, result, keep_provenance_if_unchanged=True)
    except OSError as exc:
        raise UserError(f"cannot write --out {args.out}: {exc.strerror or exc}") from None
    w = ", ".join(f"w{i}={v:.4f}" for i, v in result["weights"].items())
    print(f"{corpus.name}: {args.estimator} (min_count {args.min_count}): {w}")
    print(f"t* = {result['t_star']:.3f} (squared signal: {result['t_star_squared']:.3f}); "
          f"across estimators {result['sensitivity']['t_star_min']:.3f}.."
          f"{result['sensitivity']['t_star_max']:.3f}; paper WikiText weights give "
          f"{result['paper_wikitext']['t_star']:.3f}")
    print(f"wrote {args.out}" if written else f"{args.out} already holds these numbers: left unchanged")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
