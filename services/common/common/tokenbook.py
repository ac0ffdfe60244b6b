"""The token book: bearer tokens (stored as SHA-256 digests) to principals, read from a YAML
file or AUTH_TOKENS, and kept current while the servers run.

A book holds only digests, so a leaked book grants nothing. An entry may carry an expiry
(`expires_at`), after which its token is refused. A `TokenFile` is the book of a file that
may change under a running server: each call asks it for the book in force; it looks at the
file at most once a second (and at once on SIGHUP, see common.grpcserver) and reloads it
when it changed, so a revoked token is refused within seconds, without a restart. A file
that no longer parses leaves the last good book in force and is logged as an error.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import yaml

from common.auth import Principal, Role
from common.validation import instant

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0


class TokenSource(Protocol):
    """Where the interceptor finds the token book in force (a TokenBook, or a TokenFile)."""

    def current(self) -> TokenBook: ...


class TokenFileError(ValueError):
    """A token file that cannot be used; the message starts with `path:line:`."""


def token_digest(token: str) -> bytes:
    """The SHA-256 digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenBook:
    """Bearer tokens (by digest) to principals, some until an expiry."""

    def __init__(self, entries: Iterable[tuple[bytes, Principal]],
                 expiries: Mapping[bytes, datetime] | None = None) -> None:
        self._entries = tuple(entries)
        self._expiries = dict(expiries or {})
        digests = [digest for digest, _ in self._entries]
        if len(set(digests)) != len(digests):
            raise ValueError("the same token is listed twice")

    def __len__(self) -> int:
        return len(self._entries)

    def current(self) -> TokenBook:
        """This book (a fixed book is its own latest version; a TokenFile reloads)."""
        return self

    def lookup(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal a token stands for, or None (unknown, or expired at `now`)."""
        return self.check(token, now)[0]

    def check(self, token: str, now: datetime | None = None) -> tuple[Principal | None, str]:
        """(principal, "") for a valid token, else (None, why): unknown token or token expired."""
        candidate = token_digest(token)
        found = None
        # No early exit: every lookup compares against every entry.
        for digest, principal in self._entries:
            if hmac.compare_digest(digest, candidate):
                found = principal
        if found is None:
            return None, "unknown token"
        expires = self._expiries.get(candidate)
        if expires is not None and (now or datetime.now(timezone.utc)) >= expires:
            return None, "token expired"
        return found, ""

    @classmethod
    def parse_env(cls, text: str) -> TokenBook:
        """Read `token=name:role[:department],...`; errors name the entry, never the token."""
        entries: list[tuple[bytes, Principal]] = []
        for number, item in enumerate(text.split(","), start=1):
            token, _, spec = item.strip().rpartition("=")
            parts = spec.split(":")
            if not token or len(parts) not in (2, 3):
                raise ValueError(f"token entry {number}: expected token=name:role[:department]")
            try:
                entry = (token_digest(token), _principal(*parts))
            except ValueError as exc:
                raise ValueError(f"token entry {number}: {exc}") from None
            if any(entry[0] == digest for digest, _ in entries):
                raise ValueError(f"token entry {number}: duplicate token")
            entries.append(entry)
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        """Read a YAML file of `tokens:` entries (token or token_sha256, name, role, department,
        calls_per_second, expires_at)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            reason = getattr(exc, "problem", None) or exc
            raise TokenFileError(f"{path}:{line}: not valid YAML: {reason}") from None
        entries = list(_entries_from_yaml(root, path))
        return cls(((digest, principal) for digest, principal, _ in entries),
                   {digest: expires for digest, _, expires in entries if expires is not None})


_FIELDS = {"token", "token_sha256", "name", "role", "department", "calls_per_second", "expires_at"}
_ROLES = ", ".join(role.value for role in Role)


def _principal(name: str, role: str, department: str | None = None, calls_per_second: str | None = None) -> Principal:
    try:
        parsed = Role(role)
    except ValueError:
        raise ValueError(f"bad role {role!r} (expected one of {_ROLES})") from None
    try:
        rate = float(calls_per_second) if calls_per_second is not None else None
    except ValueError:
        raise ValueError(f"calls_per_second {calls_per_second!r} is not a number") from None
    return Principal(name, parsed, department or None, rate)


def _entries_from_yaml(root: yaml.Node | None, path: Path) -> Iterator[tuple[bytes, Principal, datetime | None]]:
    def fail(node: yaml.Node | None, reason: str) -> TokenFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return TokenFileError(f"{path}:{line}: {reason}")

    tokens = None
    if isinstance(root, yaml.MappingNode):
        tokens = next((v for k, v in root.value if k.value == "tokens"), None)
    if not isinstance(tokens, yaml.SequenceNode):
        raise fail(tokens or root, "expected a top-level 'tokens:' list")
    if not tokens.value:
        raise fail(tokens, "no tokens listed")
    first_seen: dict[bytes, int] = {}
    for item in tokens.value:
        if not isinstance(item, yaml.MappingNode):
            raise fail(item, "a token entry must be a mapping")
        fields: dict[str, str | None] = {}
        for key, value in item.value:
            if not isinstance(key, yaml.ScalarNode) or key.value not in _FIELDS:
                raise fail(key, f"unknown field; expected {', '.join(sorted(_FIELDS))}")
            if not isinstance(value, yaml.ScalarNode):
                raise fail(value, f"{key.value} must be a plain value")
            fields[key.value] = None if value.tag.endswith(":null") else value.value
        if ("token" in fields) == ("token_sha256" in fields):
            raise fail(item, "give exactly one of token and token_sha256")
        try:
            digest = _digest_of(fields)
            principal = _principal(
                fields.get("name") or "", fields.get("role") or "", fields.get("department"),
                fields.get("calls_per_second"),
            )
            expires = _expiry(fields.get("expires_at"))
        except ValueError as exc:
            raise fail(item, str(exc)) from None
        line = item.start_mark.line + 1
        if digest in first_seen:
            raise fail(item, f"duplicate token (first listed at line {first_seen[digest]})")
        first_seen[digest] = line
        yield digest, principal, expires


def _expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return instant(text)
    except ValueError as error:
        raise ValueError(f"expires_at {error}") from None


def _digest_of(fields: dict[str, str | None]) -> bytes:
    if "token" in fields:
        if not fields["token"]:
            raise ValueError("token is empty")
        return token_digest(fields["token"])
    hex_digest = (fields["token_sha256"] or "").lower()
    if len(hex_digest) != 64 or any(c not in "0123456789abcdef" for c in hex_digest):
        raise ValueError("token_sha256 must be 64 hex digits")
    return bytes.fromhex(hex_digest)


class TokenFile:
    """The book of a token file, reloaded when the file changes or on `reload()`."""

    def __init__(self, path: Path, check_every: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._book = TokenBook.load(self.path)  # at start-up a bad file is fatal (TokenFileError)
        self._checked = clock()

    def current(self) -> TokenBook:
        """The book in force, after reloading the file if it changed since the last look."""
        now = self._clock()
        if now - self._checked >= self._check_every:
            self._checked = now
            if self._stat() != self._signature:
                self.reload()
        return self._book

    def reload(self) -> bool:
        """Read the file again; keep the last good book (and log why) when it cannot be used."""
        with self._lock:
            signature = self._stat()
            try:
                book = TokenBook.load(self.path)
            except TokenFileError as error:
                self._signature = signature  # logged once per change, not once per call
                log.error("token book not reloaded; the last good one stays in force: %s", error)
                return False
            self._book, self._signature = book, signature
        log.info("token book reloaded from %s: %d tokens", self.path, len(book))
        return True

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            # stat follows symlinks: a Kubernetes secret swapped by its ..data link is a change.
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns
