"""One exception type for bad user input, so every CLI can turn it into a
single stderr line and exit status 2."""


class UserError(ValueError):
    """Invalid input from a user (bad window, k > n, missing corpus, ...)."""
