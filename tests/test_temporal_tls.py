"""Temporal over TLS: the settings as ``Client.connect``'s arguments, and a real mTLS
handshake.

The dev server cannot serve TLS (``temporal server start-dev`` has no TLS flags), so the
real test puts a TLS terminator in front of it that demands a client certificate from
a throwaway CA, as Temporal Cloud's mTLS namespaces do: the client side, which is
Equator's, runs exactly as it would against a TLS cluster."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr, ValidationError
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from runtime.settings import Settings, TemporalTLS
from runtime.temporal import Security, connect, missing_search_attributes, security
from tests.servers import equator

SERVER_NAME = "temporal.test"


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate it signed for ``SERVER_NAME``, a client
    certificate it signed, and a client certificate from another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    """A certificate for ``subject``: a CA's own when ``issuer`` is None, else a leaf
    for ``usage`` (server or client authentication) signed by the issuer."""
    now = datetime.now(UTC)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is None:
        usage_bits = {"key_cert_sign": True, "crl_sign": True, "digital_signature": True}
    else:
        usage_bits = {"key_cert_sign": False, "crl_sign": False, "digital_signature": True}
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
        assert usage is not None
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            san = x509.SubjectAlternativeName([x509.DNSName(subject)])
            builder = builder.add_extension(san, critical=False)
    key_usage = x509.KeyUsage(
        content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, encipher_only=False, decipher_only=False, **usage_bits,
    )  # fmt: skip
    return builder.add_extension(key_usage, critical=True).sign(signing_key, hashes.SHA256())


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, stranger_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    ca = (_issue("Equator test CA", ca_key, None), ca_key)
    stranger = (_issue("Some other CA", stranger_key, None), stranger_key)
    client, server = ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH
    leaves = {}
    for name, subject, issuer, usage in (
        ("server", SERVER_NAME, ca, server),
        ("client", "equator-worker", ca, client),
        ("stranger", "equator-worker", stranger, client),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        leaves[name] = _write(directory, name, _issue(subject, key, issuer, usage), key)
    ca_path, _ = _write(directory, "ca", *ca)
    return Pki(ca_path, *leaves["server"], *leaves["client"], *leaves["stranger"])


def tls_settings(address: str = "localhost:7233", **tls: object) -> Settings:
    return Settings(temporal_address=address, temporal_tls=TemporalTLS.model_validate(tls))


# The settings as connect's arguments: no server.


def test_nothing_configured_is_plaintext_as_before() -> None:
    assert security(Settings()) == Security(tls=False, api_key=None)


def test_an_api_key_alone_turns_tls_on_with_the_system_roots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EQUATOR_TEMPORAL_ADDRESS", "retail.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("EQUATOR_TEMPORAL_NAMESPACE", "retail.a1b2c")
    monkeypatch.setenv("EQUATOR_TEMPORAL_API_KEY", "tcak-secret")
    settings = Settings()
    assert security(settings) == Security(tls=True, api_key="tcak-secret")
    # The flat names, used across the project, still say where and which namespace.
    assert settings.temporal_address == "retail.a1b2c.tmprl.cloud:7233"
    assert settings.temporal_namespace == "retail.a1b2c"
    assert "tcak-secret" not in repr(settings)

    # A proxy on the same host may take the key in clear, when told so.
    monkeypatch.setenv("EQUATOR_TEMPORAL_TLS__ENABLED", "false")
    assert security(Settings()) == Security(tls=False, api_key="tcak-secret")


def test_tls_with_the_system_roots_and_nothing_else() -> None:
    assert security(tls_settings(enabled=True)) == Security(tls=True, api_key=None)


def test_mtls_settings_read_from_the_environment_become_a_tls_config(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EQUATOR_TEMPORAL_TLS__CLIENT_CERT", str(pki.client_cert))
    monkeypatch.setenv("EQUATOR_TEMPORAL_TLS__CLIENT_KEY", str(pki.client_key))
    monkeypatch.setenv("EQUATOR_TEMPORAL_TLS__SERVER_CA", str(pki.ca))
    monkeypatch.setenv("EQUATOR_TEMPORAL_TLS__SERVER_NAME", SERVER_NAME)
    assert security(Settings()) == Security(
        tls=TLSConfig(
            client_cert=pki.client_cert.read_bytes(),
            client_private_key=pki.client_key.read_bytes(),
            server_root_ca_cert=pki.ca.read_bytes(),
            domain=SERVER_NAME,
        ),
        api_key=None,
    )


def test_a_private_ca_alone_is_tls_without_a_client_certificate(pki: Pki) -> None:
    settings = tls_settings(server_ca=pki.ca)
    settings = settings.model_copy(update={"temporal_api_key": SecretStr("k")})
    assert security(settings) == Security(
        tls=TLSConfig(server_root_ca_cert=pki.ca.read_bytes()), api_key="k"
    )


def test_contradictions_are_refused_when_the_settings_load(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="client_cert and client_key go together"):
        TemporalTLS(client_cert=pki.client_cert)
    with pytest.raises(ValidationError, match="client_cert and client_key go together"):
        TemporalTLS(client_key=pki.client_key)
    with pytest.raises(ValidationError, match="enabled is false, yet"):
        TemporalTLS(enabled=False, server_ca=pki.ca)


async def test_a_missing_file_fails_the_connection_naming_its_setting(
    pki: Pki, tmp_path: Path
) -> None:
    settings = tls_settings(client_cert=pki.client_cert, client_key=tmp_path / "gone.pem")
    with pytest.raises(
        OSError, match=r"EQUATOR_TEMPORAL_TLS__CLIENT_KEY=.*gone\.pem: No such file"
    ):
        await connect(settings)
    with pytest.raises(OSError, match=r"EQUATOR_TEMPORAL_TLS__SERVER_CA=.*: Is a directory"):
        security(tls_settings(server_ca=tmp_path))


# A real handshake.


@asynccontextmanager
async def mtls_terminator(pki: Pki, upstream: str) -> AsyncIterator[str]:
    """A TLS front for ``upstream`` (plaintext gRPC) that serves the server certificate
    and demands a client certificate signed by the CA, as an mTLS cluster does. Yields
    its address."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.set_alpn_protocols(["h2"])
    host, _, port = upstream.rpartition(":")
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
        finally:
            writer.close()

    async def serve(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_reader, server = await asyncio.open_connection(host, int(port))
        for task in (pipe(client_reader, server), pipe(server_reader, client)):
            pipes.add(asyncio.create_task(task))

    front = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{front.sockets[0].getsockname()[1]}"
    finally:
        front.close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        await front.wait_closed()


@pytest.fixture
async def front(pki: Pki, dev_env: WorkflowEnvironment) -> AsyncIterator[str]:
    async with mtls_terminator(pki, dev_env.client.service_client.config.target_host) as front:
        yield front


async def test_mtls_reaches_temporal_through_the_settings(pki: Pki, front: str) -> None:
    """The client presents its certificate, checks the server's against the private CA
    under the configured name (the address is an IP), and talks to Temporal."""
    settings = tls_settings(
        front,
        client_cert=pki.client_cert,
        client_key=pki.client_key,
        server_ca=pki.ca,
        server_name=SERVER_NAME,
    )
    client = await connect(settings)
    assert await missing_search_attributes(client) == []


async def test_the_cli_connects_over_mtls_from_its_environment(pki: Pki, front: str) -> None:
    """The same settings as the worker and the API take them: `equator temporal setup`."""
    code, out, err = await equator(
        "temporal", "setup",
        environment={
            "EQUATOR_TEMPORAL_ADDRESS": front,
            "EQUATOR_TEMPORAL_TLS__CLIENT_CERT": str(pki.client_cert),
            "EQUATOR_TEMPORAL_TLS__CLIENT_KEY": str(pki.client_key),
            "EQUATOR_TEMPORAL_TLS__SERVER_CA": str(pki.ca),
            "EQUATOR_TEMPORAL_TLS__SERVER_NAME": SERVER_NAME,
        },
    )  # fmt: skip
    assert code == 0, err
    assert "all already there" in out


# What a terminator demanding mTLS refuses, as changes to settings that work.
REFUSED: dict[str, Callable[[Pki], dict[str, object]]] = {
    "no client certificate": lambda pki: {"client_cert": None, "client_key": None},
    "a client certificate from another CA": lambda pki: {
        "client_cert": pki.stranger_cert,
        "client_key": pki.stranger_key,
    },
    "the server's CA not trusted": lambda pki: {"server_ca": None},
    "another server name": lambda pki: {"server_name": "elsewhere.test"},
}


@pytest.mark.parametrize("wrong", list(REFUSED))
async def test_what_mtls_refuses_is_refused(pki: Pki, front: str, wrong: str) -> None:
    working: dict[str, object] = {
        "client_cert": pki.client_cert,
        "client_key": pki.client_key,
        "server_ca": pki.ca,
        "server_name": SERVER_NAME,
    }
    with pytest.raises(RuntimeError, match="connect"):
        await connect(tls_settings(front, **working | REFUSED[wrong](pki)))
