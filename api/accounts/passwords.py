"""Passwords of local accounts: argon2id through argon2-cffi, bounded, never stored in clear.

argon2-cffi's defaults are RFC 9106's second recommended profile (64 MiB, 3 passes), which
costs tens of milliseconds: slow enough that a stolen database is not a list of passwords,
fast enough for a sign-in. Hashes made under older parameters are re-made at the next good
sign-in. An unknown username costs the same hash as a known one (`check` against a dummy),
so timing does not tell which usernames exist.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS: Final = 12
"""NIST SP 800-63B asks for at least 8; a shared store terminal deserves more."""
MAX_PASSWORD_CHARS: Final = 256
"""Bounds the work one sign-in can ask of the hasher; passphrases fit easily."""


class PasswordRefused(ValueError):
    """A new password that breaks the rules: the message says which."""


def password_problem(password: str) -> str | None:
    """Why `password` may not be set, or None if it may."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"a password needs at least {MIN_PASSWORD_CHARS} characters"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"a password has at most {MAX_PASSWORD_CHARS} characters"
    if "\x00" in password or not password.isprintable():
        return "a password may not hold control characters"
    return None


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    return _hasher().hash("not a password anyone has")


def hash_password(password: str) -> str:
    """The argon2id PHC string of `password`, once it passes `password_problem`."""
    if problem := password_problem(password):
        raise PasswordRefused(problem)
    return _hasher().hash(password)


def check(stored: str | None, password: str) -> bool:
    """Whether `password` matches the `stored` hash (None: no such account, still hashed)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether `stored` was made with other parameters than today's."""
    return _hasher().check_needs_rehash(stored)
