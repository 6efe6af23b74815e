"""The per-container supervisor: keeps a container's process, its logs and its exit status.

The agent starts one shim per container run, detached in its own session, so
containers outlive a restart of the agent (or of the whole control plane): a
restarted agent finds the shim by the PID in its status file and adopts it.
The shim (stdlib only, so it starts in a few milliseconds):

* enters the pod's network namespace and starts the container's command line
  (the bubblewrap sandbox built by :mod:`tinykube.agent.sandbox`) with stdout and
  stderr on pipes, placing it in the container's cgroups when it has any;
* writes everything the container prints to its log file in the CRI format the
  kubelet reads (``<time> <stream> <P|F> <text>``), rotated by size;
* records ``status.json`` (atomically replaced): its own PID and the
  container's, start time, and at the end exit code, signal and finish time;
* forwards ``SIGTERM`` to the container's first process (its "PID 1": the
  first process below the bubblewrap stages), and on ``SIGUSR1`` kills the
  whole container at once (the outer bubblewrap dies; its PID namespace takes
  every process with it).

Run as ``python -m tinykube.agent.shim SPEC.json``; the spec names the command,
environment, log and status paths, network namespace and cgroups.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from typing import Any

from .logs import LogWriter

HELPERS = {"bwrap", "setpriv", "nsenter"}
CLONE_NEWNET = 0x40000000


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def main_process(root: int) -> int | None:
    """The container's first process: the first descendant of ``root`` that is not a sandbox stage."""
    frontier = [root]
    for _ in range(8):
        nxt: list[int] = []
        for pid in frontier:
            if pid != root and _comm(pid) not in HELPERS:
                return pid
            nxt.extend(_children(pid))
        if not nxt:
            return None
        frontier = nxt
    return None


def proc_start(pid: int) -> int | None:
    """A live process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the PID, it
    names one process for good (a PID alone may be reused). None when there is no such process or it has
    exited and waits to be reaped (a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):
            return None
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _enter_netns(path: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


def _join_cgroups(paths: list[str]) -> None:
    for p in paths:
        with open(os.path.join(p, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def _spawn(argv: list[str], env: dict[str, str], netns: str, cgroups: list[str]) -> tuple[int, int, int]:
    """Fork and exec the container's command line with stdout/stderr on pipes: (pid, out_fd, err_fd).

    Done by hand rather than with ``subprocess`` (which pulls in threading and friends): the shim's start
    time and memory are paid once per container. An exec failure is reported on a close-on-exec pipe.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    fail_r, fail_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(out_r)
            os.close(err_r)
            os.close(fail_r)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.closerange(3, fail_w)
            os.closerange(fail_w + 1, 65536)
            for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            if cgroups:
                _join_cgroups(cgroups)
            if netns:
                _enter_netns(netns)
            os.chdir("/")
            os.execvpe(argv[0], argv, env)
        except BaseException as ex:
            with contextlib.suppress(BaseException):
                os.write(fail_w, f"{type(ex).__name__}: {ex}".encode(errors="replace"))
        finally:
            os._exit(127)
    os.close(out_w)
    os.close(err_w)
    os.close(fail_w)
    with os.fdopen(fail_r, "rb") as f:
        failed = f.read()
    if failed:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        raise OSError(failed.decode(errors="replace"))
    return pid, out_r, err_r


def _wait(pid: int, block: bool) -> int | None:
    """The child's exit code (negative: killed by that signal), or None while it runs (block=False)."""
    try:
        got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return -1
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def run(spec: dict[str, Any]) -> int:
    status_path = spec["status"]
    netns = spec.get("netns") or ""
    cgroups = list(spec.get("cgroups") or [])
    writer = LogWriter(spec["log"], max_size=int(spec.get("maxLogBytes", 10 << 20)),
                       max_files=int(spec.get("maxLogFiles", 5)))
    status: dict[str, Any] = {"shimPid": os.getpid(), "shimStart": proc_start(os.getpid()), "startedAt": time.time()}
    try:
        pid, out_fd, err_fd = _spawn(list(spec["argv"]), dict(spec.get("env") or {}), netns, cgroups)
    except OSError as ex:
        status.update({"exitCode": 128, "reason": "StartError", "message": str(ex), "finishedAt": time.time()})
        _write_json(status_path, status)
        return 1
    status["pid"] = pid
    _write_json(status_path, status)
    exit_code: list[int] = []

    def on_term(signum: int, frame: Any) -> None:
        target = main_process(pid)
        for _ in range(100):  # still between the sandbox stages: wait for the container's own process
            if target is not None or exit_code:
                break
            time.sleep(0.01)
            target = main_process(pid)
        with contextlib.suppress(OSError):
            os.kill(target if target else pid, signal.SIGTERM)

    def on_kill(signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, on_kill)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    poller = select.poll()
    names = {out_fd: "stdout", err_fd: "stderr"}
    for fd in names:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    exited_at = 0.0
    while names:
        ready = poller.poll(1000)
        if not ready:
            # Whatever still holds the pipes once the container's process is gone (a stray descendant that
            # escaped its namespace's end) must not keep the shim, and the exit status, waiting forever.
            if not exit_code:
                code = _wait(pid, block=False)
                if code is not None:
                    exit_code.append(code)
            if exit_code:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at >= 2.0:
                    break
            continue
        for fd, _ev in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                poller.unregister(fd)
                os.close(fd)
                names.pop(fd, None)
                continue
            writer.write(names[fd], chunk)
    for fd in names:
        os.close(fd)
    code = exit_code[0] if exit_code else _wait(pid, block=True)
    assert code is not None
    writer.close()
    # bubblewrap reports a container killed by signal N as 128 + N, as container runtimes do.
    status.update({"exitCode": code if code >= 0 else 128 - code, "finishedAt": time.time()})
    if code < 0:
        status["signal"] = -code
    if any(_oom_killed(p) for p in cgroups):
        status["oomKilled"] = True
    _write_json(status_path, status)
    return 0


def _oom_killed(cgroup: str) -> bool:
    """Whether the kernel's OOM killer acted in this group: ``oom_kill`` in memory.oom_control (v1) or
    memory.events (v2)."""
    for name in ("memory.oom_control", "memory.events"):
        try:
            with open(os.path.join(cgroup, name)) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill" and int(v) > 0:
                        return True
        except (OSError, ValueError):
            continue
    return False


def main(argv: list[str] | None = None) -> int:
    # Nothing the agent had open may live on in the shim (and the container): a listening socket inherited
    # here would outlive the agent and keep its port from answering after a restart.
    os.closerange(3, 65536)
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as f:
        spec = json.load(f)
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
