"""Image references: Docker's normalisation and validation rules."""

from __future__ import annotations

import pytest

from tinykube.api import imageref

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref,full", [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("library/nginx", "docker.io/library/nginx:latest"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
    ("team/app:v2", "docker.io/team/app:v2"),
    ("registry-qcc.quantil.com/oe-tools/dummy-flask-app:1.5.0",
     "registry-qcc.quantil.com/oe-tools/dummy-flask-app:1.5.0"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b/c", "localhost:5000/a/b/c:latest"),
    ("[::1]:5000/app:x", "[::1]:5000/app:x"),
    (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
    (f"nginx:1.2@{DIGEST}", f"docker.io/library/nginx:1.2@{DIGEST}"),
    ("a_b__c--d/f.e:T_1.x-y", "docker.io/a_b__c--d/f.e:T_1.x-y"),
])
def test_parse_and_normalize_agree(ref: str, full: str) -> None:
    assert str(imageref.parse(ref)) == full
    assert imageref.normalize(ref) == full


@pytest.mark.parametrize("ref,message", [
    ("Ubuntu", "invalid reference format: repository name (library/Ubuntu) must be lowercase"),
    ("team/App", "invalid reference format: repository name (team/App) must be lowercase"),
    ("", "invalid reference format: repository name must have at least one component"),
    ("nginx:", "invalid reference format"),
    ("nginx:-x", "invalid reference format"),
    ("nginx:" + "x" * 129, "invalid reference format"),
    ("-nginx", "invalid reference format"),
    ("nginx..x", "invalid reference format"),
    ("a b", "invalid reference format"),
    ("nginx@sha256:abcd", "invalid reference format"),
    ("nginx@sha256:" + "AB" * 32, "invalid checksum digest format"),
    ("ab" * 32, "cannot specify 64-byte hexadecimal strings"),
    ("x/" + "a" * 260, "must not be more than 255 characters"),
])
def test_invalid_references_give_dockers_messages(ref: str, message: str) -> None:
    with pytest.raises(imageref.InvalidReference) as e:
        imageref.parse(ref)
    assert message in str(e.value)
    assert not imageref.is_valid(ref)


def test_uppercase_first_component_is_a_domain() -> None:
    # Docker's rule: a first component that is not all lowercase is a registry host.
    assert str(imageref.parse("Foo/bar")) == "Foo/bar:latest"


def test_familiar_forms() -> None:
    assert imageref.familiar("docker.io/library/nginx:latest") == "nginx:latest"
    assert imageref.familiar("docker.io/team/app:v2") == "team/app:v2"
    assert imageref.familiar("registry.example.com/app:1") == "registry.example.com/app:1"
    r = imageref.parse("nginx:1.27")
    assert (r.repository, r.familiar_repository, r.tag, r.digest) == ("docker.io/library/nginx", "nginx", "1.27", None)
    assert imageref.repository("nginx:1.27") == "docker.io/library/nginx"


def test_normalize_never_raises() -> None:
    assert imageref.normalize("nginx@sha256:abcd") == "docker.io/library/nginx@sha256:abcd"
    assert imageref.normalize("Ubuntu") == "docker.io/library/Ubuntu:latest"
    assert imageref.is_digest(DIGEST) and not imageref.is_digest("sha256:abc")
