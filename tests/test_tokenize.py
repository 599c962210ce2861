"""Tokenisers: round trips, the reserved mask id, the cache."""
import numpy as np
import pytest

from mdtheory.data.corpus import Corpus
from mdtheory.data.tokenize import build_tokenizer, encode_corpus, cache_dir
from mdtheory.errors import UserError

TEXT = ("To be, or not to be, that is the question:\n"
        "Whether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n") * 40


@pytest.fixture
def corpus():
    return Corpus("toy", TEXT, "Or to take arms against a sea of troubles\n",
                  "And by opposing end them. To die: to sleep;\n")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MDTHEORY_CACHE_DIR", str(tmp_path / "cache"))


def test_char_roundtrip_and_mask(corpus):
    tok = build_tokenizer("char", corpus)
    text = corpus.test
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.mask_id == tok.vocab_size - 1
    assert tok.mask_id not in set(encode_corpus(tok, corpus)["train"].tolist())
    # vocabulary covers every split, so val/test never hit an unknown symbol
    assert set(corpus.val) <= set(tok.chars)
    with pytest.raises(UserError, match="not in the vocabulary"):
        tok.encode("€")


def test_bpe_roundtrip_and_mask(corpus):
    tok = build_tokenizer("bpe", corpus, vocab_size=300)
    assert tok.vocab_size <= 300 and tok.mask_id == 0
    for text in (corpus.train[:500], corpus.val, "unseen wörds ∑"):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert tok.mask_id not in set(ids.tolist())
    assert len(tok.encode(corpus.train)) < len(corpus.train)  # it merges


def test_cache_is_reused_and_keyed(corpus):
    tok = build_tokenizer("bpe", corpus, vocab_size=300)
    folders = list((cache_dir() / "tokenizers").iterdir())
    assert len(folders) == 1 and "bpe-300" in folders[0].name
    ids = encode_corpus(tok, corpus, vocab_size=300)
    again = build_tokenizer("bpe", corpus, vocab_size=300)
    assert again.tok.get_vocab() == tok.tok.get_vocab()
    np.testing.assert_array_equal(encode_corpus(again, corpus, vocab_size=300)["test"], ids["test"])
    build_tokenizer("bpe", corpus, vocab_size=320)          # new key
    other = Corpus("toy", TEXT + "x\n", corpus.val, corpus.test)
    build_tokenizer("bpe", other, vocab_size=300)           # new corpus hash
    assert len(list((cache_dir() / "tokenizers").iterdir())) == 3


def test_bad_tokenizer_arguments(corpus):
    with pytest.raises(UserError, match="unknown tokenizer"):
        build_tokenizer("words", corpus)
    with pytest.raises(UserError, match="vocab size"):
        build_tokenizer("bpe", corpus, vocab_size=10)


def test_token_cache_is_keyed_by_tokenizer_content(corpus):
    from mdtheory.data.tokenize import CharTokenizer

    tok = build_tokenizer("char", corpus)
    first = encode_corpus(tok, corpus)
    # a retrained tokenizer of the same kind and size (another id order) must not reuse the ids
    retrained = CharTokenizer(tok.chars[::-1])
    ids = encode_corpus(retrained, corpus)
    np.testing.assert_array_equal(ids["train"], retrained.encode(corpus.train))
    assert not np.array_equal(ids["train"], first["train"])
    np.testing.assert_array_equal(encode_corpus(tok, corpus)["train"], first["train"])


def test_changed_text_file_of_the_same_name_is_re_encoded(tmp_path):
    from mdtheory.data.corpus import load_text_file

    path = tmp_path / "notes.txt"
    path.write_text("".join(f"line {i} of the first text\n" for i in range(200)))
    a = load_text_file(path)
    ids_a = encode_corpus(build_tokenizer("char", a), a)
    path.write_text("".join(f"row {i}: quite another text!\n" for i in range(200)))
    b = load_text_file(path)
    tok_b = build_tokenizer("char", b)
    ids_b = encode_corpus(tok_b, b)
    assert tok_b.decode(ids_b["train"]) == b.train
    assert not np.array_equal(ids_a["train"][:50], ids_b["train"][:50])


def test_corrupt_cache_files_are_rebuilt(corpus):
    tok = build_tokenizer("char", corpus)
    ids = encode_corpus(tok, corpus)
    for path in (cache_dir()).rglob("*"):
        if path.is_file():
            path.write_bytes(b"torn")
    again = build_tokenizer("char", corpus)
    assert again.chars == tok.chars
    np.testing.assert_array_equal(encode_corpus(again, corpus)["test"], ids["test"])
