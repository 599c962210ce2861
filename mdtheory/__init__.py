"""mdtheory: theory and simulation of the implicit regulariser of masked
diffusion language models on k-parity and on real text.

Reference: Huang & Mirzasoleiman, "Tuning the Implicit Regularizer of Masked
Diffusion Language Models: Enhancing Generalization via Insights from
k-Parity", arXiv:2601.22450 (ICML 2026).
"""

__version__ = "0.1.0"
