"""Theory of the masked-diffusion implicit regulariser on k-parity
(Huang & Mirzasoleiman, arXiv:2601.22450, sections 3-6).

    numeric       fast numpy/scipy closed forms (P_S, bounds, optimal rates)
    symbolic      the same as exact sympy expressions
    exact         exhaustive enumeration and Monte Carlo checks of the theorems
    landscape     E(W) = c^T Sigma^+ c of the reduced model, Corollary 4.6
    dependencies  dependency-mixture weights -> optimal mask rate

Only ``numeric`` is imported here; import the others explicitly (sympy is slow
to load).
"""
from . import numeric  # noqa: F401
