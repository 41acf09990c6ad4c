"""TLS and mutual TLS on the gRPC port, with a CA made inside the test (cryptography)."""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest

from harness import InProcessServer, rand

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from vecdb_client import Client, VecdbClientError  # noqa: E402
from vecdb_server.config import ConfigError, ServerConfig  # noqa: E402
from vecdb_server.guard import server_credentials  # noqa: E402

DIM = 4


def _name(cn: str) -> "x509.Name":
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool = False,
          server: bool = False) -> "x509.Certificate":
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                          False), critical=True)
    elif server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert=None, key=None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a
    second CA's client certificate (not trusted by the server)."""
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = _cert("vecdb test CA", ca_key, _name("vecdb test CA"), ca_key, ca=True)
    other_ca = _cert("other CA", other_key, _name("other CA"), other_key, ca=True)
    srv_key, cli_key, rogue_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    out = {"ca": _write(d / "ca.pem", ca),
           "server_cert": _write(d / "server.pem", _cert("localhost", srv_key, ca.subject,
                                                         ca_key, server=True)),
           "server_key": _write(d / "server.key", key=srv_key),
           "client_cert": _write(d / "client.pem", _cert("client", cli_key, ca.subject,
                                                         ca_key)),
           "client_key": _write(d / "client.key", key=cli_key),
           "rogue_cert": _write(d / "rogue.pem", _cert("rogue", rogue_key, other_ca.subject,
                                                       other_key)),
           "rogue_key": _write(d / "rogue.key", key=rogue_key)}
    return out


def _round_trip(c: Client) -> None:
    c.create_collection("t", dim=DIM, index="flat")
    vecs = rand(5, DIM)
    assert c.upsert("t", [f"p{i}" for i in range(5)], vecs).count == 5
    assert c.search("t", vector=vecs[2], k=1)[0].id == "p2"
    c.drop_collection("t")


def test_tls_round_trip(pki, tmp_path):
    srv = InProcessServer(tmp_path / "data", tls_cert_file=str(pki["server_cert"]),
                          tls_key_file=str(pki["server_key"]))
    try:
        with srv.client(ca_cert=str(pki["ca"])) as c:  # path
            assert c.health() == "SERVING"
            _round_trip(c)
        with srv.client(ca_cert=pki["ca"].read_bytes()) as c:  # PEM bytes
            assert c.list_collections() == []
        with srv.client(timeout=3, max_retries=0) as c:  # plaintext against TLS
            with pytest.raises(VecdbClientError):
                c.list_collections()
        with srv.client(tls=True, timeout=3, max_retries=0) as c:  # system roots: untrusted
            with pytest.raises(VecdbClientError):
                c.list_collections()
    finally:
        srv.stop()


def test_mtls_round_trip_and_client_certificate_required(pki, tmp_path):
    srv = InProcessServer(tmp_path / "data", tls_cert_file=str(pki["server_cert"]),
                          tls_key_file=str(pki["server_key"]),
                          tls_client_ca_file=str(pki["ca"]))
    try:
        with srv.client(ca_cert=str(pki["ca"]), client_cert=str(pki["client_cert"]),
                        client_key=str(pki["client_key"])) as c:
            _round_trip(c)
        for kw in ({}, {"client_cert": str(pki["rogue_cert"]),
                        "client_key": str(pki["rogue_key"])}):
            with srv.client(ca_cert=str(pki["ca"]), timeout=3, max_retries=0, **kw) as c:
                with pytest.raises(VecdbClientError) as ei:
                    c.list_collections()
                assert ei.value.code.name == "UNAVAILABLE"
    finally:
        srv.stop()


def test_aio_server_tls_subprocess(pki, spawn):
    srv = spawn("--server-mode", "aio", "--tls-cert-file", str(pki["server_cert"]),
                "--tls-key-file", str(pki["server_key"]), "--tls-client-ca-file",
                str(pki["ca"]), wait_serving=False)
    assert "mutual TLS" in srv.log()
    with Client(srv.target, ca_cert=str(pki["ca"]), client_cert=str(pki["client_cert"]),
                client_key=str(pki["client_key"])) as c:
        c.wait_ready(30)
        _round_trip(c)


def test_async_client_takes_the_same_tls_arguments(pki, tmp_path):
    import asyncio

    from vecdb_client import AsyncClient

    srv = InProcessServer(tmp_path / "data", tls_cert_file=str(pki["server_cert"]),
                          tls_key_file=str(pki["server_key"]),
                          tls_client_ca_file=str(pki["ca"]))

    async def main() -> int:
        async with AsyncClient(srv.target, ca_cert=str(pki["ca"]),
                               client_cert=pki["client_cert"].read_bytes(),
                               client_key=pki["client_key"].read_bytes()) as c:
            await c.create_collection("a", dim=DIM)
            return len(await c.list_collections())
    try:
        assert asyncio.run(main()) == 1
    finally:
        srv.stop()


def test_tls_settings_are_checked():
    with pytest.raises(ConfigError, match="tls_key_file"):
        ServerConfig(tls_cert_file="/x.pem")
    with pytest.raises(ConfigError, match="tls_client_ca_file"):
        ServerConfig(tls_client_ca_file="/ca.pem")
    with pytest.raises(ConfigError, match="cannot read"):
        server_credentials(ServerConfig(tls_cert_file="/nope.pem", tls_key_file="/nope.key"))
    with pytest.raises(ValueError, match="together"):
        Client("127.0.0.1:1", client_cert=b"x")
