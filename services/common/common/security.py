"""Turn security settings into what a gRPC server needs, failing start-up loudly."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from common.auth import AuthInterceptor, CustomerRefKeys
from common.limits import GrpcLimits
from common.settings import SecuritySettings, SettingsError
from common.tls import server_credentials
from common.tokenbook import TokenBook, TokenFile, TokenSource


@dataclass(frozen=True)
class ServerSecurity:
    """The token check every call passes, and TLS credentials when configured."""

    interceptor: AuthInterceptor
    credentials: grpc.ServerCredentials | None
    customer_ref_keys: CustomerRefKeys | None
    limits: GrpcLimits = GrpcLimits()
    # A token file's book, which SIGHUP reloads; None for AUTH_TOKENS (fixed).
    token_file: TokenFile | None = None


def server_security(settings: SecuritySettings) -> ServerSecurity:
    """Load the token book and TLS files; a bad one raises SettingsError naming it."""
    try:
        tokens: TokenSource = (TokenFile(settings.tokens_file) if settings.tokens_file
                               else TokenBook.parse_env(settings.tokens_inline or ""))
        credentials = (
            server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
            if settings.tls_cert_file and settings.tls_key_file
            else None
        )
    except ValueError as error:
        raise SettingsError(str(error)) from None
    return ServerSecurity(AuthInterceptor(tokens), credentials, settings.customer_ref_keys, settings.limits,
                          tokens if isinstance(tokens, TokenFile) else None)
