"""One error tree for the whole tool.

Every failure the user can act on is an :class:`AzfedError` carrying the process exit code and a hint
that says what to change. Foreign exceptions (google-auth, msal, OSError) are translated where they
enter our code; ``cli.main`` is the only place that turns these into messages and exit codes.
"""

from __future__ import annotations

# Exit codes are part of the public contract (README "Exit codes"); never renumber them.
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


class AzfedError(Exception):
    """Base error: a message, an optional hint (the fix) and the exit code to leave with."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(AzfedError):
    """Wrong command-line use, missing or invalid configuration, or bad input files (exit 2)."""

    exit_code = EXIT_USAGE


class SourceError(AzfedError):
    """The Google token source failed or is unreachable (exit 1)."""


class InvalidTokenError(AzfedError):
    """A token failed validation: wrong audience, issuer, expired, not a JWT (exit 1).

    ``claim`` names the offending claim so messages and callers can point at it.
    """

    def __init__(self, message: str, hint: str | None = None, claim: str | None = None) -> None:
        super().__init__(message, hint)
        self.claim = claim


class TokenFileError(AzfedError):
    """The token file cannot be read or written (exit 1 at run time; see UsageError for set-up)."""


class ExchangeError(AzfedError):
    """Entra refused or failed the token exchange (exit 1)."""
