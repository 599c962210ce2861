"""One exception type for bad user input, so every CLI can turn it into a
single stderr line and exit status 2."""


class UserError(ValueError):
    """Invalid input from a user (bad window, k > n, missing corpus, ...)."""


class OutputError(UserError, OSError):
    """An output file could not be written (disk full, permissions, ...).

    One line and exit status 2 like any UserError, and still an OSError (with
    the ``errno``, ``strerror`` and ``filename`` of the failed write), so
    callers that catch a failed write as OSError keep doing so. ``str()`` is
    the whole message, which names the path."""

    def __init__(self, message: str, errno: int | None = None, strerror: str | None = None,
                 filename: str | None = None):
        super().__init__(message)
        self.errno, self.strerror, self.filename = errno, strerror, filename

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
