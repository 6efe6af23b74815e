"""Builds with the host-userland bases (fast: no virtualenv, no network)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tinykube.agent.images import BuildError, BuildOptions, ImageStore, build
from tinykube.agent.images.store import Image

from .conftest import needs_sandbox

pytestmark = needs_sandbox


def write(d: Path, files: dict[str, str]) -> None:
    for rel, data in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(data)


def run_build(store: ImageStore, ctx: Path, tags: tuple[str, ...] = ("app:1",), **kw: object) -> tuple[Image, str]:
    out = io.StringIO()
    img = build(store, BuildOptions(ctx, tags=tags, **kw), out, io.StringIO())  # type: ignore[arg-type]
    return img, out.getvalue()


def steps(output: str) -> dict[str, str]:
    """{instruction: 'CACHED' | 'DONE'} from the progress output."""
    titles: dict[str, str] = {}
    res: dict[str, str] = {}
    for line in output.splitlines():
        n, _, rest = line.partition(" ")
        if rest.startswith("[") and not rest.startswith("[internal]"):
            titles[n] = rest.split("] ", 1)[1]
        elif n in titles and (rest == "CACHED" or rest.startswith("DONE")):
            res[titles[n]] = rest.split()[0]
    return res


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "data" / "images")


APP = {"Dockerfile": "FROM busybox\nWORKDIR /app\nCOPY . /app\n"
                     "RUN echo \"built $(cat /app/msg.txt)\" > /app/out.txt && mkdir /data && echo d > /data/x "
                     "&& echo tmp > /tmp/t\nCMD [\"cat\", \"/app/out.txt\"]\n",
       "msg.txt": "v1\n"}


def test_run_output_lands_in_the_image_and_the_host_is_untouched(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, APP)
    img, out = run_build(store, ctx)
    assert (img.content / "app/out.txt").read_text() == "built v1\n"
    assert (img.content / "app/msg.txt").read_text() == "v1\n"
    assert (img.content / "data/x").read_text() == "d\n"  # a new top-level directory is captured
    assert not (img.content / "tmp").exists()  # /tmp is private to the step
    assert not Path("/app/out.txt").exists() and not Path("/data/x").exists()
    assert img.config["Cmd"] == ["cat", "/app/out.txt"] and img.config["WorkingDir"] == "/app"
    assert img.names == ("docker.io/library/app:1",)
    assert "#2 [1/4] FROM docker.io/library/busybox:latest" in out
    assert "#5 [4/4] RUN echo" in out and f"writing image {img.digest} done" in out
    assert "naming to docker.io/library/app:1 done" in out
    assert store.resolve("busybox") is not None  # the base is in the store, like a pulled image


def test_cache_hit_on_unchanged_rebuild_and_miss_after_an_edit(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, APP)
    first, _ = run_build(store, ctx)
    again, out = run_build(store, ctx)
    assert again.digest == first.digest and again.created == first.created
    assert set(steps(out).values()) == {"CACHED"} and len(steps(out)) == 4
    os.utime(ctx / "msg.txt", (1, 1))  # times are not content
    assert run_build(store, ctx)[0].digest == first.digest
    (ctx / "msg.txt").write_text("v2\n")
    edited, out = run_build(store, ctx)
    assert steps(out) == {"FROM docker.io/library/busybox:latest": "CACHED", "WORKDIR /app": "CACHED", "COPY . /app": "DONE",
                          **{k: "DONE" for k in steps(out) if k.startswith("RUN")}}
    assert edited.digest != first.digest and (edited.content / "app/out.txt").read_text() == "built v2\n"
    assert store.get(first.digest).names == ()  # type: ignore[union-attr]  # dangling, like Docker
    _, out = run_build(store, ctx, no_cache=True)
    assert "CACHED" not in out.replace("FROM docker.io/library/busybox:latest\n#2 CACHED", "")


def test_copying_requirements_first_keeps_the_install_step_cached(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM busybox\nWORKDIR /app\nCOPY requirements.txt .\n"
                              "RUN cp requirements.txt installed.txt\nCOPY . .\n",
                "requirements.txt": "Flask\n", "app.py": "v1\n"})
    run_build(store, ctx)
    (ctx / "app.py").write_text("v2\n")
    img, out = run_build(store, ctx)
    s = steps(out)
    assert s["RUN cp requirements.txt installed.txt"] == "CACHED" and s["COPY . ."] == "DONE"
    assert (img.content / "app/app.py").read_text() == "v2\n"
    assert (img.content / "app/installed.txt").read_text() == "Flask\n"


def test_substitution_args_env_and_metadata(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "ARG BASE=busybox\nFROM ${BASE}\nARG VERSION=1\nARG FILE\n"
                              "ENV APP_HOME=/srv/app NAME=\"hello world\"\nWORKDIR $APP_HOME\n"
                              "COPY ${FILE:-a.txt} ./\nRUN echo \"$VERSION $APP_HOME $NAME\" > v.txt\n"
                              "EXPOSE 80 8080/udp 9000-9001\nLABEL version=\"$VERSION\" maintainer=me\n"
                              "USER nobody\nENTRYPOINT [\"/bin/sh\"]\nCMD echo hi\nSTOPSIGNAL SIGINT\n",
                "a.txt": "a\n", "b.txt": "b\n"})
    img, _ = run_build(store, ctx, build_args={"VERSION": "2", "FILE": "b.txt"})
    assert (img.content / "srv/app/v.txt").read_text() == "2 /srv/app hello world\n"
    assert (img.content / "srv/app/b.txt").exists() and not (img.content / "srv/app/a.txt").exists()
    c = img.config
    assert c["WorkingDir"] == "/srv/app" and "NAME=hello world" in c["Env"] and "APP_HOME=/srv/app" in c["Env"]
    assert not any(e.startswith("VERSION=") for e in c["Env"])  # ARGs are not in the image
    assert c["ExposedPorts"] == {"80/tcp": {}, "8080/udp": {}, "9000/tcp": {}, "9001/tcp": {}}
    assert c["Labels"]["version"] == "2" and c["Labels"]["maintainer"] == "me"
    assert c["User"] == "nobody" and c["Entrypoint"] == ["/bin/sh"] and c["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert c["StopSignal"] == "SIGINT"


def test_entrypoint_resets_an_inherited_cmd_and_run_as_user(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM busybox\nENTRYPOINT [\"top\"]\nUSER nobody\nRUN id -u\n"})
    img, out = run_build(store, ctx)
    assert img.config["Cmd"] is None and img.config["Entrypoint"] == ["top"]
    assert "65534" in out


def test_multi_stage_copy_from(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM busybox AS build\nRUN mkdir -p /out && echo artefact > /out/bin.txt\n"
                              "FROM busybox\nCOPY --from=build /out/bin.txt /app/\nCOPY --from=0 /out /copy\n"})
    img, out = run_build(store, ctx)
    assert (img.content / "app/bin.txt").read_text() == "artefact\n"
    assert (img.content / "copy/bin.txt").read_text() == "artefact\n"
    assert not (img.content / "out").exists()
    assert "[build 2/2] RUN mkdir" in out and "[stage-1 2/3] COPY --from=build" in out


def test_add_extracts_local_archives_and_copy_honours_dockerignore(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM scratch\nADD files.tar.gz /opt/\nCOPY . /src/\n"
                              "COPY --chown=1000:1000 --chmod=700 a.sh /bin2/run\n",
                ".dockerignore": "*.log\nsecret\n", "keep.txt": "k", "x.log": "log", "secret/key": "s", "a.sh": "x"})
    payload = tmp_path / "p.txt"
    payload.write_text("inside\n")
    with tarfile.open(ctx / "files.tar.gz", "w:gz") as t:
        t.add(payload, arcname="pkg/p.txt")
    img, _ = run_build(store, ctx)
    assert (img.content / "opt/pkg/p.txt").read_text() == "inside\n"
    src = sorted(p.name for p in (img.content / "src").iterdir())
    assert src == [".dockerignore", "Dockerfile", "a.sh", "files.tar.gz", "keep.txt"]
    st = (img.content / "bin2/run").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o700)


@pytest.mark.parametrize("dockerfile,line,message", [
    ("FROM busybox\nRUN exit 3\n", 2, 'process "/bin/sh -c exit 3" did not complete successfully: exit code: 3'),
    ("FROM busybox\nRUN touch /usr/x\n", 2, "did not complete successfully"),  # host dirs are read-only
    ("FROM Ubuntu\n", 1, 'failed to parse stage name "Ubuntu": invalid reference format: repository name '
                         "(library/Ubuntu) must be lowercase"),
    ("FROM nginx:1.27\n", 1, "pull access denied for nginx"),
    ("FROM busybox\nHEALTHCHECK CMD true\n", 2, "HEALTHCHECK is not supported"),
    ("FROM busybox\nCOPY missing.txt /\n", 2, "COPY failed: file not found in build context"),
    ("FROM busybox\nCOPY a b /dest\n", 2, "the destination must be a directory and end with a /"),
    ("FROM busybox\nADD https://example.com/x /\n", 2, "only local paths are supported"),
    ("FROM busybox\nUSER nosuchuser\nRUN true\n", 3, "unable to find user nosuchuser"),
    ("FROM busybox\nENV A=${B:?required}\n", 2, "B: required"),
])
def test_errors_name_the_line(store: ImageStore, tmp_path: Path, dockerfile: str, line: int, message: str) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": dockerfile, "a": "", "b": ""})
    with pytest.raises(BuildError) as e:
        run_build(store, ctx)
    assert (e.value.line, e.value.path) == (line, str(ctx / "Dockerfile"))
    assert message in e.value.message
    assert str(e.value).startswith(f"{ctx / 'Dockerfile'}:{line}: ")


def test_bad_tag_and_unused_build_arg(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM busybox\n"})
    with pytest.raises(BuildError, match=r'invalid argument "App" for "-t, --tag" flag: invalid reference format'):
        run_build(store, ctx, tags=("App",))
    err = io.StringIO()
    build(store, BuildOptions(ctx, build_args={"UNUSED": "1"}), io.StringIO(), err)
    assert "build-args [UNUSED] were not consumed" in err.getvalue()


def test_history_is_recorded(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, APP)
    img, _ = run_build(store, ctx)
    by = [h["created_by"] for h in img.history]
    assert by[-3] == "COPY . /app" and by[-2].startswith("RUN echo") and by[-1] == 'CMD ["cat", "/app/out.txt"]'
    assert [h["empty_layer"] for h in img.history][-3:] == [False, False, True]
