"""Append-only files written with raw ``os.write`` from an own buffer.

A forked child can drop the parent's pending lines (``abandon``) instead of
writing them twice, which a Python file object would do at exit. Write errors
(a full disk) never propagate into the training script: the file stops, and
``error`` says why.
"""
from __future__ import annotations

import os
from typing import Optional


class AppendFile:
    def __init__(self, path: str, header: Optional[str] = None) -> None:
        self.path = path
        self.fd: Optional[int] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.buf: list = []
        self.error: Optional[str] = None
        if header is not None and os.fstat(self.fd).st_size == 0:
            self.buf.append(header)
            self.flush()

    def append(self, line: str) -> None:
        self.buf.append(line)

    def flush(self) -> None:
        if self.buf and self.fd is not None:
            data, self.buf = memoryview("".join(self.buf).encode()), []
            try:
                while data:  # a short write (a filling disk) goes on, or fails loudly here
                    data = data[os.write(self.fd, data):]
            except OSError as exc:
                self.error = f"cannot write {os.path.basename(self.path)}: " \
                             f"{exc.strerror or exc}"
                self.abandon()

    def close(self) -> None:
        self.flush()
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def abandon(self) -> None:
        self.buf = []
        self.fd = None
