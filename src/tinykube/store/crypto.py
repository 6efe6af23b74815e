"""Encryption at rest for Secrets: AES-256-GCM with a key kept in the data dir.

Stored form: ``b"k8s:enc:aesgcm:v1:tinykube:" + nonce(12) + ciphertext+tag``, the
same envelope prefix shape kube-apiserver's ``aesgcm`` provider uses, so a value
is recognisably encrypted. The storage key is authenticated data: a ciphertext
copied to another key does not decrypt. The key file is created with mode 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = b"k8s:enc:aesgcm:v1:tinykube:"


class Encryptor:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> Encryptor:
        if path.exists():
            key = path.read_bytes()
        else:
            key = AESGCM.generate_key(bit_length=256)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
        if len(key) != 32:
            raise ValueError(f"encryption key {path} must be 32 bytes")
        return cls(key)

    def encrypt(self, key: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return PREFIX + nonce + self._aead.encrypt(nonce, plaintext, key.encode())

    def decrypt(self, key: str, stored: bytes) -> bytes:
        if not stored.startswith(PREFIX):
            return stored  # written before encryption was enabled
        body = stored[len(PREFIX):]
        return self._aead.decrypt(body[:12], body[12:], key.encode())
