"""Tokens to principals, who may act on which department, and customer pseudonyms."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent

import pytest

from common.auth import (
    CustomerRefKeys,
    PermissionDenied,
    Principal,
    Role,
    acting_as,
    authorize,
    current_principal,
    customer_ref_for,
    is_pseudonym,
)
from common.tokenbook import TokenBook, TokenFileError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "tokens.example.yaml"
KEY = b"k" * 32


@pytest.fixture
def token_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a token file (dedented) under tmp_path and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "tokens.yaml"
        path.write_text(dedent(text).lstrip("\n"))
        return path

    return write


# --- TokenBook.load ----------------------------------------------------------------


def test_example_file_maps_each_token_to_its_principal() -> None:
    book = TokenBook.load(EXAMPLE)

    assert book.lookup("dev-token-billing") == Principal("billing-team", Role.DEPARTMENT, "billing")
    assert book.lookup("dev-token-admin") == Principal("ops-admin", Role.ADMIN, None)
    assert book.lookup("dev-token-agent") == Principal("agent-ada", Role.AGENT, None)
    assert book.lookup("dev-token-crm") == Principal("crm", Role.SERVICE, None, calls_per_second=500)
    # notify calls a gateway once per delivery: its rate covers a breach storm
    assert book.lookup("dev-token-notify") == Principal("notify", Role.SERVICE, None, calls_per_second=20000)
    assert len(book) == 8


def test_an_entry_may_give_its_token_a_rate_of_its_own(token_file: Callable[[str], Path]) -> None:
    path = token_file("""
        tokens:
          - token: fast
            name: crm
            role: service
            calls_per_second: 250.5
          - token: plain
            name: ada
            role: agent
    """)

    book = TokenBook.load(path)

    assert book.lookup("fast").calls_per_second == 250.5
    assert book.lookup("plain").calls_per_second is None


@pytest.mark.parametrize("rate", ["0", "-3", "fast"])
def test_a_rate_that_is_not_a_positive_number_names_its_line(token_file: Callable[[str], Path], rate: str) -> None:
    path = token_file(f"""
        tokens:
          - token: fast
            name: crm
            role: service
            calls_per_second: {rate}
    """)

    with pytest.raises(TokenFileError, match=rf"^{path}:2: calls_per_second"):
        TokenBook.load(path)


def test_sha256_entry_matches_the_token_it_digests(token_file: Callable[[str], Path]) -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest().upper()
    path = token_file(f"""
        tokens:
          - token_sha256: {digest}
            name: crm
            role: service
    """)

    book = TokenBook.load(path)

    assert book.lookup("s3cret") == Principal("crm", Role.SERVICE, None)
    assert book.lookup(digest) is None


def test_unknown_and_empty_tokens_find_nobody() -> None:
    book = TokenBook.load(EXAMPLE)

    assert book.lookup("dev-token-nobody") is None
    assert book.lookup("") is None
    assert book.lookup("DEV-TOKEN-BILLING") is None


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("  - {token: t1, name: a, role: superuser}\n", 2, "bad role 'superuser'"),
        ("  - {token: t1, name: a, role: department}\n", 2, "role department needs a department"),
        ("  - {token: t1, name: a, role: agent}\n  - {token: t1, name: b, role: admin}\n",
         3, "duplicate token (first listed at line 2)"),
        ("  - {token: t1, name: a, role: agent}\n  - {token_sha256: "
         + hashlib.sha256(b"t1").hexdigest() + ", name: b, role: admin}\n",
         3, "duplicate token (first listed at line 2)"),
        ("  - {token: t1, role: agent}\n", 2, "name is empty"),
        ("  - {name: a, role: agent}\n", 2, "exactly one of token and token_sha256"),
        ("  - {token: t1, token_sha256: ab, name: a, role: agent}\n", 2, "exactly one of"),
        ("  - {token_sha256: abc, name: a, role: agent}\n", 2, "64 hex digits"),
        ("  - {token: t1, name: a, role: agent}\n  - {token: t2, name: b, rol: agent}\n",
         3, "unknown field"),
        ("  - {token: t1, name: [a, b], role: agent}\n", 2, "name must be a plain value"),
        ("  - just-a-string\n", 2, "must be a mapping"),
        ("  []\n", 2, "no tokens listed"),
        ("  - {token: t1, name: a, role: agent\n", 3, "not valid YAML"),
    ],
)
def test_bad_token_file_names_file_and_line(
    token_file: Callable[[str], Path], body: str, line: int, reason: str
) -> None:
    path = token_file("tokens:\n" + body)

    with pytest.raises(TokenFileError) as error:
        TokenBook.load(path)

    assert str(error.value).startswith(f"{path}:{line}: ")
    assert reason in str(error.value)


def test_token_file_errors_never_show_the_token(token_file: Callable[[str], Path]) -> None:
    path = token_file("""
        tokens:
          - {token: very-secret-token, name: a, role: agent}
          - {token: very-secret-token, name: b, role: agent}
    """)

    with pytest.raises(TokenFileError) as error:
        TokenBook.load(path)

    assert "very-secret-token" not in str(error.value)


def test_file_without_tokens_list_is_refused(token_file: Callable[[str], Path]) -> None:
    path = token_file("users: []\n")

    with pytest.raises(TokenFileError, match=r":1: expected a top-level 'tokens:' list"):
        TokenBook.load(path)


def test_missing_token_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(TokenFileError, match=rf"^{path}: cannot read"):
        TokenBook.load(path)


# --- TokenBook.parse_env -----------------------------------------------------------


def test_env_string_maps_tokens_with_and_without_department() -> None:
    book = TokenBook.parse_env(
        "tok-a=ada:agent, tok-b=billing-team:department:billing,b64==crm:service"
    )

    assert book.lookup("tok-a") == Principal("ada", Role.AGENT, None)
    assert book.lookup("tok-b") == Principal("billing-team", Role.DEPARTMENT, "billing")
    assert book.lookup("b64=") == Principal("crm", Role.SERVICE, None)
    assert book.lookup("tok-c") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("tok-a=ada:agent,tok-b=x:root", "token entry 2: bad role 'root'"),
        ("tok-a=billing:department", "token entry 1: role department needs a department"),
        ("tok-a=ada:agent,tok-a=bob:admin", "token entry 2: duplicate token"),
        ("tok-a", "token entry 1: expected token=name:role[:department]"),
        ("tok-a=ada", "token entry 1: expected"),
        ("tok-a=a:agent:b:c", "token entry 1: expected"),
        ("=ada:agent", "token entry 1: expected"),
        ("tok-a=ada:agent,", "token entry 2: expected"),
        ("", "token entry 1: expected"),
    ],
)
def test_bad_env_string_names_the_entry_not_the_token(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as error:
        TokenBook.parse_env(text)

    assert reason in str(error.value)
    assert "tok-a" not in str(error.value)


# --- authorize ----------------------------------------------------------------------

SCOPES = {"own department": "billing", "other department": "claims", "no department": None}
ALLOWED_SETS = [set(Role), {Role.ADMIN}, {Role.DEPARTMENT, Role.ADMIN}, {Role.AGENT, Role.SERVICE}]


@pytest.mark.parametrize(
    ("role", "scope", "allowed"),
    list(itertools.product(Role, SCOPES, ALLOWED_SETS)),
    ids=lambda v: "+".join(sorted(r.value for r in v)) if isinstance(v, set) else str(v),
)
def test_authorize_by_role_and_department(role: Role, scope: str, allowed: set[Role]) -> None:
    principal = Principal("someone", role, "billing")
    denied = role not in allowed or (role is Role.DEPARTMENT and scope == "other department")

    if denied:
        with pytest.raises(PermissionDenied):
            authorize(principal, allowed, SCOPES[scope])
    else:
        authorize(principal, allowed, SCOPES[scope])


def test_department_denial_names_both_departments() -> None:
    billing = Principal("billing-team", Role.DEPARTMENT, "billing")

    message = "^department billing may not act on legs of claims$"
    with pytest.raises(PermissionDenied, match=message):
        authorize(billing, {Role.DEPARTMENT}, "claims")


def test_role_denial_names_the_role_and_what_is_allowed() -> None:
    agent = Principal("ada", Role.AGENT, None)

    with pytest.raises(PermissionDenied, match="ada has role agent; allowed here: admin, service"):
        authorize(agent, {Role.ADMIN, Role.SERVICE})


def test_admin_without_department_acts_on_any_department() -> None:
    authorize(Principal("ops", Role.ADMIN, None), {Role.ADMIN}, "claims")


def test_department_principal_needs_a_department() -> None:
    with pytest.raises(ValueError, match="needs a department"):
        Principal("team", Role.DEPARTMENT, None)


# --- current principal outside gRPC -------------------------------------------------


def test_current_principal_is_set_only_inside_acting_as() -> None:
    ada = Principal("ada", Role.AGENT, None)

    with acting_as(ada):
        assert current_principal() == ada
    with pytest.raises(RuntimeError, match="no authenticated principal"):
        current_principal()


# --- customer_ref_for ---------------------------------------------------------------


def test_customer_ref_is_deterministic_per_key() -> None:
    ref = customer_ref_for("CUST-00042", KEY)

    assert ref == customer_ref_for("CUST-00042", KEY)
    assert re.fullmatch(r"c-[0-9a-f]{32}", ref)


def test_customer_ref_depends_on_key_and_id() -> None:
    ref = customer_ref_for("CUST-00042", KEY)

    assert customer_ref_for("CUST-00042", b"j" * 32) != ref
    assert customer_ref_for("CUST-00043", KEY) != ref


@pytest.mark.parametrize("raw", ["CUST-00042", "jane.doe@example.com", "+44 7700 900123"])
def test_customer_ref_never_contains_the_raw_id(raw: str) -> None:
    ref = customer_ref_for(raw, KEY)

    assert raw not in ref
    assert raw.lower() not in ref


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [("", KEY, "customer id is empty"), ("   ", KEY, "customer id is empty"),
     ("CUST-1", b"short", "at least 16"), ("CUST-1", b"", "at least 16")],
)
def test_customer_ref_refuses_empty_id_or_short_key(raw: str, key: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        customer_ref_for(raw, key)


# --- pseudonym shape and key rotation -----------------------------------------------

OLD_KEY, ROTATED_UNTIL = b"o" * 32, datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("raw", ["CUST-00042", "jane.doe@example.com", "+44 7700 900123"])
def test_every_pseudonym_has_the_shape_the_edge_accepts(raw: str) -> None:
    assert is_pseudonym(customer_ref_for(raw, KEY))


@pytest.mark.parametrize("ref", ["cust-1", "c-" + "0" * 31, "c-" + "0" * 33, "c-" + "A" * 32, "C-" + "0" * 32,
                                 "+447700900123", "jane.doe@example.com", " c-" + "0" * 32])
def test_anything_else_is_not_a_pseudonym(ref: str) -> None:
    assert not is_pseudonym(ref)


def test_new_pseudonyms_come_from_the_current_key_during_a_rotation() -> None:
    keys = CustomerRefKeys(KEY, OLD_KEY, ROTATED_UNTIL)

    assert keys.pseudonym("CUST-1") == customer_ref_for("CUST-1", KEY)


def test_a_lookup_finds_the_previous_keys_pseudonym_until_the_window_ends() -> None:
    keys = CustomerRefKeys(KEY, OLD_KEY, ROTATED_UNTIL)
    current, previous = customer_ref_for("CUST-1", KEY), customer_ref_for("CUST-1", OLD_KEY)

    during = keys.lookups("CUST-1", ROTATED_UNTIL - timedelta(seconds=1))
    after = keys.lookups("CUST-1", ROTATED_UNTIL)

    assert during == [current, previous] and after == [current]


def test_without_a_rotation_a_lookup_has_one_pseudonym() -> None:
    assert CustomerRefKeys(KEY).lookups("CUST-1", ROTATED_UNTIL) == [customer_ref_for("CUST-1", KEY)]


@pytest.mark.parametrize(("previous", "until", "reason"), [
    (b"short", ROTATED_UNTIL, "previous customer ref key has 5 bytes"),
    (OLD_KEY, None, "needs the end of its window"),
    (None, ROTATED_UNTIL, "needs the end of its window"),
])
def test_a_rotation_needs_a_long_enough_previous_key_and_its_window(previous, until, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        CustomerRefKeys(KEY, previous, until)
