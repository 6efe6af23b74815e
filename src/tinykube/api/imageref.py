"""Container image references: parsing, validation and normalisation (pure, no I/O).

A reference names an image the way Docker and the CRI do::

    [DOMAIN/]PATH[:TAG][@DIGEST]

``DOMAIN`` is a registry host (``registry-qcc.quantil.com``, ``localhost:5000``,
``[::1]:5000``); without one, the name is on Docker Hub, ``docker.io``, and a
single-component path is an official image under ``library/``. So ``nginx``,
``library/nginx``, ``docker.io/library/nginx`` and ``index.docker.io/nginx`` all
name ``docker.io/library/nginx``, and without a tag or digest the tag is
``latest``. The first component of a name is a domain when it contains a ``.``
or a ``:``, is ``localhost``, or is not all lowercase (``Foo/bar`` is on host
``Foo``): that is Docker's rule, reproduced here.

Grammar (Docker's, as documented by the distribution project):

* a path component is lowercase alphanumerics separated by ``.``, ``_``,
  ``__`` or one or more ``-``; components are joined by ``/``;
* a domain component is alphanumerics and inner ``-`` (any case), joined by
  ``.``, optionally followed by ``:PORT``; an IPv6 address goes in brackets;
* a tag is a word character followed by at most 127 word characters, ``.``
  or ``-``;
* a digest is ``ALGORITHM:HEX`` with at least 32 hex digits; ``sha256``
  digests have exactly 64 lowercase hex digits;
* the name (domain and path) is at most 255 characters.

Two entry points, one splitting routine:

:func:`parse` validates and raises :class:`InvalidReference` with Docker's
messages (``invalid reference format: repository name (library/Ubuntu) must be
lowercase``); image builds, ``tinykube image`` and the node agent use it.
:func:`normalize` never raises: it applies the same splitting and defaults to
any string and is what simulated nodes report as a container's ``image``
(a kubelet with a broken reference would fail the pull; the simulation only
needs a stable name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io",)
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")


class InvalidReference(ValueError):
    """A string that is not a valid image reference; the message is Docker's."""


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``domain`` and ``path`` are normalised (``docker.io``, ``library/nginx``);
    ``tag`` is ``None`` only when a digest was given without one."""

    domain: str
    path: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``docker.io/library/nginx``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The short form Docker shows: ``nginx``, ``team/app``, ``registry.example.com/app``."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len(OFFICIAL_PREFIX):] if self.path.startswith(OFFICIAL_PREFIX) else self.path
        return self.repository

    def __str__(self) -> str:
        out = self.repository
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    @property
    def familiar(self) -> str:
        """``nginx:latest``, ``team/app:v2@sha256:...``."""
        out = self.familiar_repository
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out


def _split(ref: str) -> tuple[str, str, str | None, str | None]:
    """Lexical split into (domain, path, tag, digest) with Docker Hub defaults; no validation."""
    name, at, digest = ref.partition("@")
    domain, slash, rest = name.partition("/")
    if not slash or ("." not in domain and ":" not in domain and domain != "localhost" and domain == domain.lower()):
        domain, rest = DEFAULT_DOMAIN, name
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    tag: str | None = None
    colon = rest.rfind(":")
    if colon >= 0:
        rest, tag = rest[:colon], rest[colon + 1:]
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest, tag, (digest if at else None)


def parse(ref: str) -> Reference:
    """Parse and validate ``ref``; a missing tag (and no digest) becomes ``latest``.

    Raises :class:`InvalidReference` with the message Docker gives for the same input.
    """
    if not ref:
        raise InvalidReference("invalid reference format: repository name must have at least one component")
    if _HEX64_RE.fullmatch(ref):
        raise InvalidReference(f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise InvalidReference("invalid reference format")
    domain, path, tag, digest = _split(ref)
    if path != path.lower():
        raise InvalidReference(f"invalid reference format: repository name ({path}) must be lowercase")
    if not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReference("invalid reference format")
    if not path or path == OFFICIAL_PREFIX or not _PATH_RE.fullmatch(path):
        raise InvalidReference("invalid reference format")
    if len(domain) + 1 + len(path) > NAME_MAX:
        raise InvalidReference(f"invalid reference format: repository name must not be more than {NAME_MAX} characters")
    if tag is not None and not _TAG_RE.fullmatch(tag):
        raise InvalidReference("invalid reference format")
    if digest is not None:
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference("invalid reference format")
        if digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest):
            raise InvalidReference("invalid checksum digest format")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def is_valid(ref: str) -> bool:
    try:
        parse(ref)
    except InvalidReference:
        return False
    return True


def normalize(ref: str) -> str:
    """The fully qualified form (``nginx`` -> ``docker.io/library/nginx:latest``), never raising.

    A reference with a digest keeps its tag only if it had one (``nginx@sha256:...`` ->
    ``docker.io/library/nginx@sha256:...``), as a CRI runtime reports it.
    """
    domain, path, tag, digest = _split(ref)
    out = f"{domain}/{path}"
    if tag is not None:
        out += ":" + tag
    elif digest is None:
        out += ":" + DEFAULT_TAG
    if digest is not None:
        out += "@" + digest
    return out


def repository(ref: str) -> str:
    """The repository part of the normalised form: ``nginx:1.27`` -> ``docker.io/library/nginx``."""
    domain, path, _tag, _digest = _split(ref)
    return f"{domain}/{path}"


def familiar(ref: str) -> str:
    """The short form Docker prints for a normalised reference (``docker.io/library/nginx:latest`` ->
    ``nginx:latest``); never raising."""
    domain, path, tag, digest = _split(ref)
    r = Reference(domain, path, tag, digest)
    return r.familiar


def is_digest(s: str) -> bool:
    """``sha256:<64 lowercase hex>``."""
    return bool(_SHA256_RE.fullmatch(s))
