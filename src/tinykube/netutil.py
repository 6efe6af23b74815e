"""Listening sockets for the API server and the node agents' kubelet API.

Sockets are close-on-exec (Python's default, kept on purpose): the agent starts container supervisors and
``exec`` processes, and a listener inherited by one of them would outlive the server and keep its port from
answering after a restart (uvloop's process spawning does not close inherited descriptors itself).
"""

from __future__ import annotations

import errno
import socket


def listen_socket(host: str, port: int, backlog: int = 2048, fallback_port: int | None = None) -> socket.socket:
    """A socket listening on ``host:port`` (0: a free port). If ``port`` is ``fallback_port`` and taken, a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as ex:
        if ex.errno != errno.EADDRINUSE or port != fallback_port:
            sock.close()
            raise
        sock.bind((host, 0))
    sock.listen(backlog)
    return sock
