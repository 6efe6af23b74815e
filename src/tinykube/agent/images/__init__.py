"""Images without Docker: a Dockerfile builder and a local content-addressed image store.

* :mod:`.dockerfile` — Dockerfile syntax and Docker's word processing;
* :mod:`.context` — build context, ``.dockerignore``, COPY/ADD sources;
* :mod:`.tree` — content trees: identity digest, copy, scoped paths;
* :mod:`.store` — :class:`ImageStore` and :class:`Image` (what the node agent uses);
* :mod:`.runner` — running build commands in the sandbox a container would get;
* :mod:`.build` — the builder and its step cache.

See ``docs/images.md`` for the user's view.
"""

from __future__ import annotations

from .build import BuildError, BuildOptions, build
from .store import Image, ImageError, ImageNotFound, ImageStore

__all__ = ["BuildError", "BuildOptions", "Image", "ImageError", "ImageNotFound", "ImageStore", "build"]
