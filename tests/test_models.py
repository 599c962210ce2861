"""Transformer attention modes and the reduced MLP."""
import pytest
import torch

from mdtheory.errors import UserError
from mdtheory.models import MLPConfig, ReducedMLP, Transformer, TransformerConfig


def make(attention):
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=5, block_size=10, n_layer=2, n_head=2,
                                         n_embd=16, attention=attention)).eval()


def changed_positions(model, idx, pos):
    """Positions whose logits move when the token at ``pos`` changes."""
    other = idx.clone()
    other[:, pos] = (other[:, pos] + 1) % 5
    with torch.no_grad():
        diff = (model(idx) - model(other)).abs().amax(dim=(0, 2))
    return diff > 1e-6


def test_shapes_and_params():
    model = make("bidirectional")
    idx = torch.randint(0, 5, (3, 10))
    assert model(idx).shape == (3, 10, 5)
    assert model.num_params() > 0 and model.flops_per_token() > 6 * model.num_params() - 1
    with pytest.raises(UserError):
        model(torch.randint(0, 5, (1, 11)))


def test_causal_sees_only_the_past():
    idx = torch.randint(0, 5, (2, 10), generator=torch.Generator().manual_seed(1))
    moved = changed_positions(make("causal"), idx, 6)
    assert not moved[:6].any() and moved[6:].all()


def test_bidirectional_sees_everything():
    idx = torch.randint(0, 5, (2, 10), generator=torch.Generator().manual_seed(1))
    assert changed_positions(make("bidirectional"), idx, 6).all()


def test_uniform_attention_averages_values():
    model = make("uniform")
    attn = model.blocks[0].attn
    x = torch.randn(2, 10, 16)
    expected = attn.c_proj(attn.c_attn(x).mean(dim=1, keepdim=True)).expand(2, 10, 16)
    assert torch.allclose(attn(x), expected, atol=1e-6)
    assert not hasattr(attn, "q_proj") and attn.c_attn.out_features == 16  # no queries/keys


def test_bad_config():
    with pytest.raises(UserError):
        TransformerConfig(vocab_size=5, block_size=10, n_head=3, n_embd=16)
    with pytest.raises(UserError):
        TransformerConfig(vocab_size=5, block_size=10, attention="sideways")


def test_reduced_mlp_is_a_function_of_z_tilde():
    torch.manual_seed(0)
    model = ReducedMLP(MLPConfig(vocab_size=3, seq_len=5, hidden=32))
    idx = torch.randint(0, 3, (4, 5))
    out = model(idx)
    assert out.shape == (4, 5, 3)
    assert torch.allclose(out, out[:, :1].expand_as(out))  # same output at every position
    z = model.z_tilde(idx)
    assert torch.all(z.sum(dim=1) == 5) and z.shape == (4, 15)
    # explicit v^T relu(W z~) with W the embedding table transposed
    explicit = model.v(torch.relu(z @ model.W.weight))
    assert torch.allclose(out[:, 0], explicit, atol=1e-5)


@pytest.mark.parametrize("way", ["embedding_bag", "gather"])
def test_reduced_mlp_first_layer_matches_the_row_gather(way):
    """The one-hot product gives the outputs and gradients of summing gathered rows."""
    torch.manual_seed(0)
    model = ReducedMLP(MLPConfig(vocab_size=4, seq_len=21, hidden=256))
    idx = torch.randint(0, 4, (64, 21))
    grads = {}
    for first_layer in ("onehot", way):
        model.first_layer = first_layer
        model.zero_grad()
        out = model(idx)
        out.square().mean().backward()
        grads[first_layer] = (out.detach(), model.W.weight.grad.clone(), model.v.weight.grad.clone())
    for fast, slow in zip(grads["onehot"], grads[way]):
        assert torch.allclose(fast, slow, atol=1e-5, rtol=1e-5)
    assert grads["onehot"][1].abs().sum() > 0
    model.first_layer = "sideways"
    with pytest.raises(UserError):
        model(idx)
