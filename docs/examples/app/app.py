"""A tiny HTTP server for the release-strategy examples: every GET answers "<version> <hostname>".

Standard library only. The version comes from $APP_VERSION (the Dockerfile sets it from the
VERSION build argument), the port from $PORT (default 8080). In a pod the hostname is the
pod's name, so each answer says which version and which replica served it.
"""

import http.server
import os
import socket

VERSION = os.environ.get("APP_VERSION", "unknown")
PORT = int(os.environ.get("PORT", "8080"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients may reuse a connection

    def do_GET(self) -> None:
        body = f"{VERSION} {socket.gethostname()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would only fill the pod's log


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("", PORT), Handler).serve_forever()
