"""Cluster CA, serving certificate and bearer token creation and reuse."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tinykube.server import pki as pki_mod
from tinykube.server.pki import Pki, ensure_pki, load_token

FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "token")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(p: Pki) -> tuple[set[str], set[str]]:
    san = _cert(p.cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def test_creates_private_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    p = ensure_pki(data, [])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in FILES:
        f = data / name
        assert f.is_file(), name
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, name
    assert not [f for f in data.iterdir() if f.name not in FILES]  # no temp files left behind
    assert p.ca_pem == (data / "ca.crt").read_bytes()
    assert (p.ca_cert_path, p.ca_key_path, p.cert_path, p.key_path, p.token_path) == tuple(data / n for n in FILES)


def test_keys_are_ecdsa_p256(tmp_path: Path) -> None:
    p = ensure_pki(tmp_path, [])
    for key_path in (p.ca_key_path, p.key_path):
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)


def test_serving_cert_verifies_against_ca(tmp_path: Path) -> None:
    p = ensure_pki(tmp_path, [])
    ca, cert = _cert(p.ca_cert_path), _cert(p.cert_path)
    cert.verify_directly_issued_by(ca)  # raises if not
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def test_default_and_requested_sans(tmp_path: Path) -> None:
    p = ensure_pki(tmp_path, ["example.test", "192.168.10.7", "[fd00::1]"])
    names, ips = _sans(p)
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "example.test",
    } <= names
    assert {"127.0.0.1", "::1", "10.96.0.1", "192.168.10.7", "fd00::1"} <= ips
    assert "192.168.10.7" not in names  # IPs are IP SANs, not DNS SANs


def test_reuse_on_second_call(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["example.test"])
    before = {n: (tmp_path / n).read_bytes() for n in FILES}
    second = ensure_pki(tmp_path, ["example.test"])
    assert second.ca_pem == first.ca_pem
    assert second.token == first.token
    assert {n: (tmp_path / n).read_bytes() for n in FILES} == before
    # a subset of the names already in the certificate needs no reissue either
    ensure_pki(tmp_path, [])
    assert (tmp_path / "server.crt").read_bytes() == before["server.crt"]


def test_new_host_reissues_serving_cert_only(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["a.test"])
    old_cert = first.cert_path.read_bytes()
    old_key = first.key_path.read_bytes()
    second = ensure_pki(tmp_path, ["a.test", "10.1.2.3"])
    assert second.ca_pem == first.ca_pem  # same CA: existing kubeconfigs stay valid
    assert second.token == first.token
    assert second.cert_path.read_bytes() != old_cert
    assert second.key_path.read_bytes() != old_key
    names, ips = _sans(second)
    assert "a.test" in names and "10.1.2.3" in ips
    _cert(second.cert_path).verify_directly_issued_by(_cert(second.ca_cert_path))
    assert stat.S_IMODE(second.cert_path.stat().st_mode) == 0o600


def test_missing_or_corrupt_files_are_regenerated(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, [])
    first.key_path.unlink()
    second = ensure_pki(tmp_path, [])
    assert second.ca_pem == first.ca_pem and second.key_path.exists()
    _cert(second.cert_path).verify_directly_issued_by(_cert(second.ca_cert_path))

    second.cert_path.write_bytes(b"garbage")
    third = ensure_pki(tmp_path, [])
    _cert(third.cert_path).verify_directly_issued_by(_cert(third.ca_cert_path))

    # a new CA (old one lost) forces a new serving certificate signed by it
    third.ca_key_path.unlink()
    fourth = ensure_pki(tmp_path, [])
    assert fourth.ca_pem != first.ca_pem
    _cert(fourth.cert_path).verify_directly_issued_by(_cert(fourth.ca_cert_path))


def test_expiring_serving_cert_is_renewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki_mod, "SERVER_VALIDITY", dt.timedelta(days=10))
    first = ensure_pki(tmp_path, [])
    monkeypatch.setattr(pki_mod, "SERVER_VALIDITY", dt.timedelta(days=365))
    old = first.cert_path.read_bytes()
    second = ensure_pki(tmp_path, [])
    assert second.cert_path.read_bytes() != old
    assert second.ca_pem == first.ca_pem


def test_token(tmp_path: Path) -> None:
    assert load_token(tmp_path) is None
    p = ensure_pki(tmp_path, [])
    assert load_token(tmp_path) == p.token
    raw = base64.urlsafe_b64decode(p.token + "=" * (-len(p.token) % 4))
    assert len(raw) == 32
    assert set(p.token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    other = ensure_pki(tmp_path / "other", [])
    assert other.token != p.token


def test_ip_hosts_parse_like_ipaddress(tmp_path: Path) -> None:
    p = ensure_pki(tmp_path, ["::ffff:1.2.3.4", " spaced.test ", ""])
    names, ips = _sans(p)
    assert str(ipaddress.ip_address("::ffff:1.2.3.4")) in ips
    assert "spaced.test" in names


def test_startup_is_fast(tmp_path: Path) -> None:
    ensure_pki(tmp_path / "warm", [])  # first use loads OpenSSL bits
    start = time.perf_counter()
    ensure_pki(tmp_path / "fresh", ["example.test"])
    created = time.perf_counter() - start
    start = time.perf_counter()
    ensure_pki(tmp_path / "fresh", ["example.test"])
    reused = time.perf_counter() - start
    assert created < 0.25 and reused < 0.25  # typically ~3 ms and ~2 ms; generous for slow CI machines
