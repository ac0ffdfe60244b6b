"""TLS credentials for our gRPC servers and clients, from PEM files named in settings.

The files are read and checked here, at start-up, because gRPC itself only complains at
the first handshake, and then without naming the file.
"""

from __future__ import annotations

from pathlib import Path

import grpc


class TlsFileError(ValueError):
    """A certificate or key file that is missing, unreadable or not PEM; the message names it."""


def _read_pem(what: str, path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsFileError(f"{what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsFileError(f"{what} {path}: not a PEM file")
    return data


def server_credentials(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None
) -> grpc.ServerCredentials:
    """Server TLS; with `client_ca_file`, mutual TLS that requires a client certificate."""
    pair = (_read_pem("TLS key", key_file), _read_pem("TLS certificate", cert_file))
    if client_ca_file is None:
        return grpc.ssl_server_credentials([pair])
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=_read_pem("TLS client CA", client_ca_file),
        require_client_auth=True,
    )


def channel_credentials(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> grpc.ChannelCredentials:
    """Client TLS trusting `ca_file` (the system roots when None), with an optional client cert."""
    if (cert_file is None) != (key_file is None):
        raise TlsFileError("a client certificate needs both cert_file and key_file")
    root = None if ca_file is None else _read_pem("TLS CA", ca_file)
    if cert_file is None or key_file is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=_read_pem("TLS client key", key_file),
        certificate_chain=_read_pem("TLS client certificate", cert_file),
    )
