"""One call to the handoff service; a failed call becomes `error CODE: details` and exit 1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import grpc
import typer
from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from rich.console import Console
from rich.markup import escape

from common.grpcclient import channel

# Longer than the service's own 10 s command timeout, so its UNAVAILABLE (which says to
# retry with the same request_id) reaches the user rather than a bare DEADLINE_EXCEEDED.
TIMEOUT = 15.0
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

errors = Console(stderr=True, soft_wrap=True)


def fail(error: grpc.RpcError, token: str, request_id: str = "") -> NoReturn:
    """Print the error (with a hint where one helps) on stderr and exit 1."""
    errors.print(f"[red]error[/red] {error.code().name}: {escape(error.details() or '')}")
    if error.code() == grpc.StatusCode.UNAUTHENTICATED and not token:
        errors.print("hint: no token given; pass --token or set HANDOFF_TOKEN (e.g. dev-token-admin in development)")
    elif error.code() in _RETRYABLE and request_id:
        errors.print(f"hint: retrying with --request-id {request_id} is safe; it changes nothing twice")
    raise typer.Exit(1)


def stub_call(stub_type: Callable, address: str, token: str, ca: Path | None, method: str, request,
              request_id: str = ""):
    """The response of one call to the service of `stub_type` on a connection of its own."""
    with channel(address, token, ca) as connection:
        try:
            return getattr(stub_type(connection), method)(request, timeout=TIMEOUT)
        except grpc.RpcError as error:
            fail(error, token, request_id)


def all_pages(rpc: Callable, request, first, fields: tuple[str, ...]):
    """`first` and every later page in one response: `rpc(request)` follows next_page_token to
    the end, and the repeated `fields` of each page are appended."""
    collected = type(first)(**{field: getattr(first, field) for field in fields})
    page = first
    while page.next_page_token:
        request.page_token = page.next_page_token
        page = rpc(request)
        for field in fields:
            getattr(collected, field).extend(getattr(page, field))
    return collected


@contextmanager
def handoff_service(address: str, token: str, ca: Path | None) -> Iterator[Callable]:
    """`rpc(method, request, request_id="")` on one connection: the response, or exit as `fail` does."""
    with channel(address, token, ca) as connection:
        stub = handoff_grpc.HandoffServiceStub(connection)

        def rpc(method: str, request, request_id: str = ""):
            try:
                return getattr(stub, method)(request, timeout=TIMEOUT)
            except grpc.RpcError as error:
                fail(error, token, request_id)

        yield rpc


def call(address: str, token: str, ca: Path | None, method: str, request, request_id: str = ""):
    """The response of one HandoffService call on a connection of its own."""
    with handoff_service(address, token, ca) as rpc:
        return rpc(method, request, request_id)
