"""The corpus-predicted mask-rate law: ``--sampler predicted[:width=W,law=L]``.

The theory predicts the best mask rate of a corpus from its dependency
weights w_2..w_6: t* = argmax_t sum_i w_i t (1-t)^(i-1) (Huang &
Mirzasoleiman, arXiv:2601.22450, App. F.4; ``mdtheory.derive ngram``). This
module estimates t* and trains on a law centred there (built by
``mdtheory.samplers.centred``), so nobody has to read t* off a report and
type a window:

    law=window        U[t* - W/2, t* + W/2], moved inside [0, 1] if needed (default W = 0.1)
    law=beta          Beta(a, b) with mode t* and the standard deviation of that window (W / sqrt 12)
    law=logitnormal   sigmoid(mu + sigma Z) with mode t* and the same standard deviation

``predicted_t_star(corpus)`` estimates t* from the corpus's training split
(distinct-frequent estimator, min count 5, as ``derive ngram``) and caches
the result by the corpus fingerprint under ``$MDTHEORY_CACHE_DIR`` (default
``~/.cache/mdtheory``)/predicted_t/. In your own MDLM::

    from mdtheory.predicted import law_for_text
    sampler, info = law_for_text(open("corpus.txt").read())   # info: t*, weights
    noisy, mask, p_mask = forward_process(input_ids, mask_id=MASK_ID, sampler=sampler)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .cli import atomic_write_text
from .errors import UserError
# the laws themselves (the ``predicted`` sampler kind) live with the other samplers
from .samplers import DEFAULT_EPS, MaskRateSampler
from .samplers.centred import DEFAULT_WIDTH, LAWS, centred_law, parse_options  # noqa: F401
from .samplers.smooth import LogitNormalSampler  # noqa: F401

ESTIMATOR, MIN_COUNT = "distinct-frequent", 5


def _cache_dir() -> Path:
    return Path(os.environ.get("MDTHEORY_CACHE_DIR") or Path.home() / ".cache" / "mdtheory") / "predicted_t"


def predicted_t_star(corpus) -> dict:
    """t* of a corpus's training split with the weights behind it, cached by
    the corpus fingerprint: {t_star, weights, estimator, min_count, fingerprint}."""
    from .theory import ngram_weights as nw
    from .theory.numeric import mixture_argmax

    fingerprint = corpus.fingerprint()
    path = _cache_dir() / f"{fingerprint}-{ESTIMATOR}-{MIN_COUNT}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("fingerprint") == fingerprint and 0 < cached.get("t_star", -1) < 1:
            return cached
    except (OSError, ValueError):
        pass  # absent or damaged: compute again
    ids, _ = nw.word_ids(corpus.train)
    weights = nw.estimate_weights(ids, ESTIMATOR, min_count=MIN_COUNT)
    info = {"t_star": round(float(mixture_argmax(weights)), 6),
            "weights": {str(i): round(float(w), 6) for i, w in weights.items()},
            "estimator": ESTIMATOR, "min_count": MIN_COUNT, "fingerprint": fingerprint}
    try:
        atomic_write_text(path, json.dumps(info, indent=2) + "\n")
    except OSError:
        pass  # a cache that cannot be written only costs the time to count again
    return info


def law_for_corpus(corpus, spec: str = "predicted", eps: float = DEFAULT_EPS,
                   weighting: str = "inverse_t") -> tuple[MaskRateSampler, dict]:
    """(sampler, info) for ``predicted[:width=W,law=L]`` on ``corpus``."""
    width, law = parse_options(spec)
    info = predicted_t_star(corpus)
    sampler = centred_law(info["t_star"], width, law, eps=eps, weighting=weighting)
    return sampler, {**info, "width": width, "law": law, "sampler": sampler.spec()}


def law_for_text(text: str, spec: str = "predicted", eps: float = DEFAULT_EPS,
                 weighting: str = "inverse_t") -> tuple[MaskRateSampler, dict]:
    """The same for a plain text (all of it counts as training text)."""
    from .data.corpus import Corpus

    if not isinstance(text, str) or not text.strip():
        raise UserError("the text to predict t* from is empty")
    return law_for_corpus(Corpus("text", text, "", ""), spec, eps=eps, weighting=weighting)
