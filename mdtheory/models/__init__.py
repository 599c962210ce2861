"""Models: a nanoGPT-style transformer and the theory's reduced MLP."""
from .mlp import MLPConfig, ReducedMLP
from .transformer import ATTENTION_MODES, Transformer, TransformerConfig

__all__ = ["ATTENTION_MODES", "MLPConfig", "ReducedMLP", "Transformer", "TransformerConfig"]
