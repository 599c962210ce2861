"""k-parity data: labels, secret set, disjoint splits, token format."""
import numpy as np
import pytest
import torch

from mdtheory.data.parity import (BOS, MASK, ParityData, autoregressive_pair, parity_labels,
                                  with_label_masked)
from mdtheory.errors import UserError


def test_labels_are_parity_of_the_secret_bits():
    data = ParityData(n=10, k=3, train_size=300, val_size=100, seed=4)
    for tokens in (data.train_tokens, data.val_tokens):
        bits = tokens[:, :-1].numpy()
        assert set(np.unique(tokens.numpy())) <= {0, 1}
        expected = np.bitwise_xor.reduce(bits[:, data.secret], axis=1)
        assert np.array_equal(tokens[:, -1].numpy(), expected)
    assert len(data.secret) == 3 and data.extended_secret[-1] == 10


def test_secret_fixed_per_seed_and_splits_disjoint():
    a, b = ParityData(20, 6, 2000, 500, seed=1), ParityData(20, 6, 2000, 500, seed=1)
    assert np.array_equal(a.secret, b.secret) and torch.equal(a.train_tokens, b.train_tokens)
    secrets = {tuple(ParityData(20, 6, 10, 10, seed=s).secret) for s in range(5)}
    assert len(secrets) > 1
    train = {tuple(r) for r in a.train_tokens[:, :-1].tolist()}
    val = {tuple(r) for r in a.val_tokens[:, :-1].tolist()}
    assert len(train) == 2000 and len(val) == 500 and not train & val


def test_large_n_path_is_distinct():
    data = ParityData(40, 5, 3000, 1000, seed=0)
    rows = {tuple(r) for r in torch.cat([data.train_tokens, data.val_tokens])[:, :-1].tolist()}
    assert len(rows) == 4000


@pytest.mark.parametrize("kwargs", [dict(n=5, k=6, train_size=10), dict(n=5, k=0, train_size=10),
                                    dict(n=4, k=2, train_size=10, val_size=10),
                                    dict(n=8, k=2, train_size=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(UserError):
        ParityData(**kwargs)


def test_token_helpers():
    tokens = torch.tensor([[1, 0, 1, 0], [0, 0, 1, 1]])
    masked = with_label_masked(tokens)
    assert torch.equal(masked[:, :-1], tokens[:, :-1]) and torch.all(masked[:, -1] == MASK)
    inputs, targets = autoregressive_pair(tokens)
    assert torch.all(inputs[:, 0] == BOS) and torch.equal(inputs[:, 1:], tokens[:, :-1])
    assert torch.equal(targets, tokens)
    assert np.array_equal(parity_labels(np.array([[1, 1, 0], [1, 0, 0]]), np.array([0, 1])), [0, 1])
