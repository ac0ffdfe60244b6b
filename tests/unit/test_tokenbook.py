"""Token book entries with an expiry, and a token file reloaded while a server runs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.auth import Principal, Role
from common.tokenbook import TokenBook, TokenFile, TokenFileError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def entry(token: str, name: str, expires: str | None = None) -> str:
    line = f"  - token: {token}\n    name: {name}\n    role: agent\n"
    return line + (f"    expires_at: {expires}\n" if expires else "")


def write(path: Path, *entries: str) -> Path:
    path.write_text("tokens:\n" + "".join(entries))
    return path


def test_a_token_is_refused_from_its_expiry_on(tmp_path: Path) -> None:
    book = TokenBook.load(write(tmp_path / "t.yaml", entry("tok-a", "ada", "2026-03-01T12:00:00Z"), entry("tok-b", "bo")))

    assert book.check("tok-a", NOW - timedelta(seconds=1)) == (Principal("ada", Role.AGENT), "")
    assert book.check("tok-a", NOW) == (None, "token expired")
    assert book.check("tok-b", NOW + timedelta(days=999)) == (Principal("bo", Role.AGENT), "")
    assert book.check("tok-c", NOW) == (None, "unknown token")


@pytest.mark.parametrize(("value", "reason"), [("tomorrow", "is not an RFC 3339 time"),
                                               ("2026-03-01T12:00:00", "needs a UTC offset")])
def test_a_bad_expiry_names_its_line(tmp_path: Path, value: str, reason: str) -> None:
    path = write(tmp_path / "t.yaml", entry("tok-a", "ada"), entry("tok-b", "bo", f'"{value}"'))

    with pytest.raises(TokenFileError, match=rf"^{path}:5: expires_at .*{reason}"):
        TokenBook.load(path)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_changed_file_is_read_again_at_the_next_look(tmp_path: Path) -> None:
    path, ticks = write(tmp_path / "t.yaml", entry("tok-a", "ada")), Ticks()
    tokens = TokenFile(path, check_every=1.0, clock=ticks)
    write(path, entry("tok-b", "bo"))  # tok-a revoked

    within_the_second = tokens.current().lookup("tok-a")
    ticks.now = 1.0
    after = tokens.current()

    assert within_the_second == Principal("ada", Role.AGENT)
    assert (after.lookup("tok-a"), after.lookup("tok-b")) == (None, Principal("bo", Role.AGENT))


def test_reload_reads_the_file_even_when_it_looks_unchanged(tmp_path: Path) -> None:
    path, ticks = write(tmp_path / "t.yaml", entry("tok-a", "ada")), Ticks()
    tokens = TokenFile(path, clock=ticks)
    write(path, entry("tok-b", "bo"))

    assert tokens.reload() is True
    assert tokens.current().lookup("tok-b") == Principal("bo", Role.AGENT)


def test_a_broken_file_keeps_the_last_good_book_and_says_why(tmp_path: Path, caplog) -> None:
    path, ticks = write(tmp_path / "t.yaml", entry("tok-a", "ada")), Ticks()
    tokens = TokenFile(path, clock=ticks)
    path.write_text("tokens: [\n")
    ticks.now = 5.0

    with caplog.at_level(logging.ERROR, logger="common.tokenbook"):
        book = tokens.current()
        ticks.now = 10.0
        tokens.current()

    assert book.lookup("tok-a") == Principal("ada", Role.AGENT)
    [logged] = [record.getMessage() for record in caplog.records]  # once per change, not per look
    assert logged.startswith(f"token book not reloaded; the last good one stays in force: {path}:")
    assert "not valid YAML" in logged


def test_a_missing_file_at_start_up_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=f"^{tmp_path / 'none.yaml'}: cannot read"):
        TokenFile(tmp_path / "none.yaml")
