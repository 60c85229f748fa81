"""Authentication of the service: bearer tokens compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from starlette.requests import Request

#: The methods that only read.
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests hides the tokens' lengths too.
    return hashlib.sha256(token.encode()).digest()


@final
class BearerTokens:
    """Authenticate requests by ``Authorization: Bearer <token>``.

    Tokens are compared in constant time (``hmac.compare_digest`` over their
    SHA-256 digests, against every known token, whatever matches), so neither
    a token's content nor its length leaks through timing. The tokens are
    never logged and do not appear in the object's repr.

    A principal listed in ``read_only`` may read (``GET``) but not change
    anything: its ``POST`` and ``DELETE`` requests get 403.

    Args:
        mapping: token -> principal (the name the service knows the caller by).
        read_only: principals that may only read.

    Raises:
        ValueError: for an empty token or principal.
        TypeError: for tokens or principals that are not strings.
    """

    def __init__(
        self, mapping: Mapping[str, str], *, read_only: Collection[str] = ()
    ) -> None:
        entries: list[tuple[bytes, str]] = []
        items: Iterable[tuple[object, object]] = mapping.items()
        for token, principal in items:
            if not isinstance(token, str) or not isinstance(principal, str):
                raise TypeError("tokens and principals must be strings")
            if not token.strip() or not principal:
                raise ValueError("tokens and principals must not be empty")
            entries.append((_digest(token), principal))
        self._entries: Final = tuple(entries)
        self._read_only: Final = frozenset(read_only)

    def __repr__(self) -> str:
        return f"<BearerTokens: {len(self._entries)} tokens>"

    def __call__(self, request: Request) -> str | None:
        """Return the principal of ``request``; None for missing or wrong credentials.

        Raises:
            PermissionError: a read-only principal asks to change something.
        """
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        principal = self.principal(token.strip())
        if principal is None:
            return None
        if principal in self._read_only and request.method not in READ_METHODS:
            raise PermissionError(f"{principal!r} may only read")
        return principal

    def principal(self, token: str) -> str | None:
        """Return the principal of ``token``, or None; in constant time."""
        digest = _digest(token)
        found: str | None = None
        for known, principal in self._entries:
            # No early exit: every token is compared.
            if hmac.compare_digest(digest, known):
                found = principal
        return found
