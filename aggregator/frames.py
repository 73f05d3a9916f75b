"""Length-prefixed pickle frames between the daemon and its parse workers.

The parent unpickles what a worker sends, and a worker handles hostile bytes: so the
reader resolves only the classes it is given (``allowed``), never arbitrary callables.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Collection
from typing import IO, Any

HEADER = struct.Struct("!Q")
PROTOCOL = 5


def encode(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=PROTOCOL)
    return HEADER.pack(len(data)) + data


def write_frame(fh: IO[bytes], obj: object) -> None:
    fh.write(encode(obj))
    fh.flush()


class _Restricted(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: Collection[tuple[str, str]]) -> None:
        super().__init__(io.BytesIO(data))
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"class {module}.{name} is not allowed in a frame")
        return super().find_class(module, name)


def decode(data: bytes, allowed: Collection[tuple[str, str]]) -> Any:
    """Unpickle ``data``, resolving only the ``allowed`` (module, name) classes."""
    return _Restricted(data, allowed).load()


def read_frame(fh: IO[bytes], allowed: Collection[tuple[str, str]]) -> Any:
    """The next frame from ``fh``; ``EOFError`` at a clean end of stream."""
    header = fh.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError("end of stream")
    (size,) = HEADER.unpack(header)
    data = fh.read(size)
    if len(data) < size:
        raise EOFError("truncated frame")
    return decode(data, allowed)
