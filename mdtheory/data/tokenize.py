"""Tokenisers for the language-model lab: characters or a locally trained BPE.

Both reserve a ``[MASK]`` id that never occurs in the text (the absorbing
state of masked diffusion) and expose the same small interface::

    tok.vocab_size   number of ids, the mask id included
    tok.mask_id      the reserved mask id
    tok.encode(text) -> np.ndarray[int32]
    tok.decode(ids)  -> str

``char``  one id per distinct character of the whole corpus (all splits, as
          nanoGPT's shakespeare_char does, so no unknown symbols), sorted by
          code point; the mask id comes last.
``bpe``   byte-level BPE trained with HF ``tokenizers`` on the training split
          only; ``[MASK]`` is special token 0. Byte level means every string
          encodes, no unknown tokens.

Trained tokenisers and encoded splits are cached under ``cache_dir()``
(``$MDTHEORY_CACHE_DIR``, else ``~/.cache/mdtheory``), so a sweep of 39 runs
tokenises the corpus once. Keys are content hashes, never names: a tokenizer
by the hash of the corpus text, its kind and vocabulary size (what trains
it); token ids by the hash of the corpus text and the hash of the tokenizer
itself (its full JSON), so an edited file of the same name or a retrained
tokenizer never reuses stale ids.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .corpus import SPLITS, Corpus

TOKENIZERS = ("char", "bpe")
MASK_TOKEN = "[MASK]"
DEFAULT_BPE_VOCAB = 4096


def cache_dir() -> Path:
    root = os.environ.get("MDTHEORY_CACHE_DIR") or Path.home() / ".cache" / "mdtheory"
    return Path(root)


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise UserError("character vocabulary has duplicates")
        self.chars = chars
        self.mask_id = len(chars)
        self.vocab_size = len(chars) + 1
        self._lookup = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, corpus: Corpus) -> "CharTokenizer":
        return cls("".join(sorted(set(corpus.train + corpus.val + corpus.test))))

    def encode(self, text: str) -> np.ndarray:
        try:
            return np.fromiter((self._lookup[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError as exc:
            raise UserError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] if i < self.mask_id else "_" for i in np.asarray(ids).tolist())

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "chars": self.chars})


class BPETokenizer:
    kind = "bpe"

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.mask_id = tokenizer.token_to_id(MASK_TOKEN)
        if self.mask_id is None:
            raise UserError("BPE tokenizer has no [MASK] token")
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def train(cls, corpus: Corpus, vocab_size: int = DEFAULT_BPE_VOCAB) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[MASK_TOKEN], show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(_chunks(corpus.train), trainer=trainer)
        return cls(tok)

    def encode(self, text: str) -> np.ndarray:
        # encode paragraph chunks in parallel; ByteLevel with no prefix space
        # keeps the concatenation identical to encoding the whole text
        out = [np.asarray(e.ids, dtype=np.int32) for e in self.tok.encode_batch(list(_chunks(text)))]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)

    def decode(self, ids) -> str:
        return self.tok.decode(np.asarray(ids).tolist(), skip_special_tokens=False)

    def to_json(self) -> str:
        return self.tok.to_str()


def _chunks(text: str, size: int = 1 << 16):
    """Pieces of about ``size`` characters, cut just after a newline."""
    start = 0
    while start < len(text):
        end = text.find("\n", min(start + size, len(text)))
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _load(kind: str, payload: str):
    if kind == "char":
        return CharTokenizer(json.loads(payload)["chars"])
    from tokenizers import Tokenizer
    return BPETokenizer(Tokenizer.from_str(payload))


def build_tokenizer(kind: str, corpus: Corpus, vocab_size: int = DEFAULT_BPE_VOCAB,
                    use_cache: bool = True):
    """Train (or load from the cache) a tokenizer for ``corpus``."""
    if kind not in TOKENIZERS:
        raise UserError(f"unknown tokenizer {kind!r}; choose from {', '.join(TOKENIZERS)}")
    if kind == "bpe" and not 256 < int(vocab_size) <= 65536:
        raise UserError(f"BPE vocab size must be in (256, 65536], got {vocab_size}")
    path = _cache_key(kind, corpus, vocab_size) / "tokenizer.json"
    if use_cache and path.is_file():
        try:
            return _load(kind, path.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - a torn or foreign cache file is retrained, not fatal
            pass
    tok = CharTokenizer.train(corpus) if kind == "char" else BPETokenizer.train(corpus, vocab_size)
    if use_cache:
        from ..cli import atomic_write_text
        atomic_write_text(path, tok.to_json())
    return tok


def encode_corpus(tok, corpus: Corpus, vocab_size: int = DEFAULT_BPE_VOCAB,
                  use_cache: bool = True) -> dict[str, np.ndarray]:
    """Token ids of each split, cached under the corpus and tokenizer hashes.

    ``vocab_size`` is not needed for the key (the tokenizer's own hash covers
    it) and is kept for callers that pass it."""
    folder = cache_dir() / "tokens" / f"{corpus.fingerprint()}-{tokenizer_fingerprint(tok)}"
    out = {}
    for split in SPLITS:
        path = folder / f"{split}.npy"
        if use_cache and path.is_file():
            try:
                out[split] = np.load(path, allow_pickle=False)
                continue
            except (OSError, ValueError):  # torn or corrupt cache file: encode again
                pass
        ids = tok.encode(corpus.split(split))
        if use_cache:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{split}.{os.getpid()}.npy"
            np.save(tmp, ids)
            os.replace(tmp, path)
        out[split] = ids
    return out


def tokenizer_fingerprint(tok) -> str:
    """Hash of the tokenizer's full description (vocabulary, merges, specials)."""
    return hashlib.sha256(tok.to_json().encode("utf-8")).hexdigest()[:16]


def _cache_key(kind: str, corpus: Corpus, vocab_size: int) -> Path:
    size = "" if kind == "char" else f"-{int(vocab_size)}"
    return cache_dir() / "tokenizers" / f"{corpus.name}-{corpus.fingerprint()}-{kind}{size}"
