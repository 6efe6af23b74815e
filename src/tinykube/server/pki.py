"""The cluster's certificates and bearer token, created on first start and reused after.

Layout in the data directory (every file mode 0600, the directory 0700)::

    ca.crt  ca.key          self-signed cluster CA (10 years)
    server.crt server.key   API server serving certificate signed by the CA (1 year)
    token                   the admin bearer token (32 random bytes, URL-safe base64)

Keys are ECDSA P-256: generating one takes about a millisecond, so a fresh cluster's
PKI costs a few milliseconds, and a restart only reads and checks files.

The serving certificate carries the names clients use for the API server: the
loopback names and addresses, the in-cluster ``kubernetes.default.svc...`` names,
the first service IP ``10.96.0.1``, plus any extra hosts asked for (IP literals
become IP SANs, anything else a DNS SAN).  It is reissued when a requested name is
missing, when it was not signed by the current CA, or when it is close to expiry;
the CA itself is only replaced when its files are missing or unusable, so
kubeconfigs holding it stay valid.

Files are written to a temporary file created with mode 0600 and renamed into
place, so no key is ever readable by other users, even briefly, and readers never
see a half-written file.  There is deliberately no fsync (it can cost tens of
milliseconds per file on a slow disk, and start-up time matters): a file torn by a
power loss fails to load and is simply regenerated on the next start.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..fileutil import write_private

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
TOKEN = "token"

DEFAULT_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
DEFAULT_IPS = ("127.0.0.1", "::1", "10.96.0.1")

CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)  # reissue the serving cert when it expires sooner than this
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock skew between processes and machines

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Pki:
    """Where the cluster's credentials live, plus the two values clients need in memory."""

    data_dir: Path
    ca_cert_path: Path
    ca_key_path: Path
    cert_path: Path
    key_path: Path
    token_path: Path
    ca_pem: bytes
    token: str


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _split_hosts(hosts: list[str]) -> tuple[list[str], list[IPAddress]]:
    """Requested SANs, defaults first, without duplicates; IP literals (``[::1]`` too) become IP SANs."""
    names: list[str] = []
    ips: list[IPAddress] = []
    for raw in [*DEFAULT_DNS_NAMES, *DEFAULT_IPS, *hosts]:
        h = raw.strip()
        if h.startswith("[") and h.endswith("]"):
            h = h[1:-1]
        if not h:
            continue
        try:
            ip = ipaddress.ip_address(h)
        except ValueError:
            name = h.lower().rstrip(".")
            if name and name not in names:
                names.append(name)
            continue
        if ip not in ips:
            ips.append(ip)
    return names, ips


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tinykube-ca")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server_cert(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[str], ips: list[IPAddress]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _public_bytes(key: ec.EllipticCurvePublicKey | object) -> bytes | None:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """A certificate and its ECDSA key, or ``None`` when missing, unreadable or not matching."""
    cert_pem, key_pem = _read(cert_path), _read(key_path)
    if cert_pem is None or key_pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if _public_bytes(cert.public_key()) != _public_bytes(key.public_key()):
        return None
    return cert, key


def _ca_usable(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bc.ca and cert.not_valid_after_utc > _now() + RENEW_BEFORE


def _server_cert_ok(cert: x509.Certificate, ca_cert: x509.Certificate, names: list[str], ips: list[IPAddress]) -> bool:
    """Signed by this CA, not close to expiry, and carrying every requested name."""
    if cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc <= _now() + RENEW_BEFORE:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return all(n in have_names for n in names) and all(ip in have_ips for ip in ips)


def _new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def load_token(data_dir: Path) -> str | None:
    """The bearer token stored in ``data_dir``, or ``None`` when there is none yet."""
    raw = _read(Path(data_dir) / TOKEN)
    if raw is None:
        return None
    token = raw.decode("utf-8", "replace").strip()
    return token or None


def ensure_pki(data_dir: Path, hosts: list[str] | None = None) -> Pki:
    """Create (first start) or reuse (later starts) the CA, serving certificate and token in ``data_dir``."""
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = data_dir / CA_CERT, data_dir / CA_KEY
    cert_path, key_path = data_dir / SERVER_CERT, data_dir / SERVER_KEY
    token_path = data_dir / TOKEN
    names, ips = _split_hosts(list(hosts or []))

    ca = _load_pair(ca_cert_path, ca_key_path)
    if ca is None or not _ca_usable(ca[0]):
        ca = _new_ca()
        write_private(ca_key_path, _key_pem(ca[1]))
        write_private(ca_cert_path, ca[0].public_bytes(serialization.Encoding.PEM))
    ca_cert, ca_key = ca

    server = _load_pair(cert_path, key_path)
    if server is None or not _server_cert_ok(server[0], ca_cert, names, ips):
        cert, key = _new_server_cert(ca_cert, ca_key, names, ips)
        write_private(key_path, _key_pem(key))
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))

    token = load_token(data_dir)
    if token is None:
        token = _new_token()
        write_private(token_path, (token + "\n").encode())

    return Pki(
        data_dir=data_dir,
        ca_cert_path=ca_cert_path,
        ca_key_path=ca_key_path,
        cert_path=cert_path,
        key_path=key_path,
        token_path=token_path,
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        token=token,
    )
