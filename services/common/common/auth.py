"""Who is calling, and may they: principals and roles, a gRPC interceptor, customer pseudonyms.

The interceptor finds each bearer token's principal in the token book in force
(common.tokenbook) and puts the caller's principal in a context variable for the servicer to read
with `current_principal()`; servicers then call `authorize`, whose `PermissionDenied`
the interceptor turns into PERMISSION_DENIED.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from common.tokenbook import TokenSource


class Role(str, Enum):
    """What a caller is: the role decides what it may do."""

    AGENT = "agent"
    DEPARTMENT = "department"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller; a DEPARTMENT principal always names its department."""

    name: str
    role: Role
    department: str | None = None
    # Calls per second this principal's token may make; None: the server's default (limits).
    calls_per_second: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name is empty")
        if not isinstance(self.role, Role):
            raise ValueError(f"role {self.role!r} is not a Role")
        if self.role is Role.DEPARTMENT and not self.department:
            raise ValueError("role department needs a department")
        if self.calls_per_second is not None and not self.calls_per_second > 0:
            raise ValueError("calls_per_second must be greater than 0")


class PermissionDenied(Exception):
    """The principal may not do what it asked; the message says why."""


def authorize(
    principal: Principal, allowed_roles: set[Role], department: str | None = None
) -> None:
    """Raise PermissionDenied unless the role is allowed and, for a department, it is its own."""
    if principal.role not in allowed_roles:
        allowed = ", ".join(sorted(role.value for role in allowed_roles)) or "none"
        raise PermissionDenied(
            f"{principal.name} has role {principal.role.value}; allowed here: {allowed}"
        )
    if principal.role is Role.DEPARTMENT and department is not None:
        if department != principal.department:
            raise PermissionDenied(
                f"department {principal.department} may not act on legs of {department}"
            )


def customer_ref_for(raw_customer_id: str, key: bytes) -> str:
    """A stable pseudonym for a customer id: keyed HMAC-SHA256, so it cannot be reversed."""
    if not raw_customer_id.strip():
        raise ValueError("customer id is empty")
    if len(key) < 16:
        raise ValueError(f"customer ref key has {len(key)} bytes; at least 16 are needed")
    digest = hmac.new(key, raw_customer_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "c-" + digest[:32]


# What customer_ref_for makes: a customer_ref of any other shape could be a name, a phone
# number or an e-mail address, so the edge refuses it.
PSEUDONYM = re.compile(r"c-[0-9a-f]{32}")


def is_pseudonym(customer_ref: str) -> bool:
    """Whether `customer_ref` has the shape of our pseudonyms (`c-` and 32 hex digits)."""
    return PSEUDONYM.fullmatch(customer_ref) is not None


@dataclass(frozen=True)
class CustomerRefKeys:
    """The HMAC key that pseudonymises customer ids, and during a rotation the key before it.

    New pseudonyms always come from `current`; until `previous_until`, a lookup by raw id
    also finds what was written under `previous`.
    """

    current: bytes
    previous: bytes | None = None
    previous_until: datetime | None = None

    def __post_init__(self) -> None:
        for name, key in (("current", self.current), ("previous", self.previous)):
            if key is not None and len(key) < 16:
                raise ValueError(f"{name} customer ref key has {len(key)} bytes; at least 16 are needed")
        if (self.previous is None) != (self.previous_until is None):
            raise ValueError("a previous customer ref key needs the end of its window, and only it")

    def pseudonym(self, raw_customer_id: str) -> str:
        """The customer_ref to write for a raw id."""
        return customer_ref_for(raw_customer_id, self.current)

    def lookups(self, raw_customer_id: str, now: datetime) -> list[str]:
        """Every customer_ref a raw id may have been written under, the current one first."""
        refs = [self.pseudonym(raw_customer_id)]
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            refs.append(customer_ref_for(raw_customer_id, self.previous))
        return refs


# --- the current principal and the interceptor ---------------------------------------

_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def current_principal() -> Principal:
    """The principal of the call being handled; RuntimeError outside an authenticated call."""
    try:
        return _PRINCIPAL.get()
    except LookupError:
        raise RuntimeError(
            "no authenticated principal: AuthInterceptor is not installed, the service is "
            "exempt, or this runs outside a gRPC call (use acting_as in tests)"
        ) from None


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Make `principal` current inside the block, e.g. to test a servicer without gRPC."""
    reset = _PRINCIPAL.set(principal)
    try:
        yield principal
    finally:
        _PRINCIPAL.reset(reset)


EXEMPT_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)

_HANDLER_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}

Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


def wrap_handler(handler: grpc.RpcMethodHandler, method: str, awaiting: Wrapper, streaming: Wrapper,
                 request_deserializer: Callable[[bytes], Any] | None = None) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour wrapped: `streaming` for a reply stream, `awaiting` otherwise;
    its requests read with `request_deserializer` when one is given."""
    field, factory = _HANDLER_FACTORIES[handler.request_streaming, handler.response_streaming]
    inner = getattr(handler, field)
    if inspect.isasyncgenfunction(inner):
        wrapped = streaming(inner)
    elif inspect.iscoroutinefunction(inner):
        wrapped = awaiting(inner)
    else:
        # A sync handler runs on a thread pool, outside the context we could set.
        raise TypeError(f"our interceptors need async handlers; {method} is not")
    return factory(wrapped, request_deserializer=request_deserializer or handler.request_deserializer,
                   response_serializer=handler.response_serializer)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires `authorization: Bearer <token>` on every call outside the exempt services."""

    def __init__(self, book: TokenSource, exempt_services: Iterable[str] = EXEMPT_SERVICES,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._tokens = book
        self._exempt = frozenset(exempt_services)
        self._now = now

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        service = details.method.lstrip("/").rpartition("/")[0]
        if handler is None or service in self._exempt:
            return handler
        principal, failure = self._authenticate(details.invocation_metadata or ())
        return wrap_handler(handler, details.method, lambda inner: _awaiting(inner, principal, failure),
                            lambda inner: _streaming(inner, principal, failure))

    def _authenticate(self, metadata: Iterable[tuple[str, Any]]) -> tuple[Principal | None, str]:
        values = [value for key, value in metadata if key == "authorization"]
        words = values[0].split() if len(values) == 1 and isinstance(values[0], str) else []
        if len(words) != 2 or words[0].lower() != "bearer":
            return None, "missing bearer token"
        return self._tokens.current().check(words[1], self._now())


async def _enter(
    principal: Principal | None, failure: str, context: grpc.aio.ServicerContext
) -> None:
    if principal is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, failure)
    else:
        # Each RPC runs in its own task, so the value dies with the call and needs no reset.
        _PRINCIPAL.set(principal)


def _awaiting(
    inner: Callable[..., Awaitable[Any]], principal: Principal | None, failure: str
) -> Callable[..., Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _enter(principal, failure, context)
        try:
            return await inner(request, context)
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

    return handle


def _streaming(
    inner: Callable[..., AsyncIterator[Any]], principal: Principal | None, failure: str
) -> Callable[..., AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await _enter(principal, failure, context)
        try:
            async for response in inner(request, context):
                yield response
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

    return handle
