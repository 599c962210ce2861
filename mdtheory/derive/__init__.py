"""``python -m mdtheory.derive``: the theory's numbers for any k and window.

    quantities.py  one JSON-ready record per k (the CLI's contract)
    report.py      the readable text report
    latex.py       LaTeX macros and formulas for the paper
    ngram.py       ``derive ngram``: dependency weights from a corpus (separate)
"""
