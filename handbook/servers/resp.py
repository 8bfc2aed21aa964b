"""Just enough of the Redis protocol (RESP2) to start, probe and stop a server.

The tests and snippets talk to Redis with the real ``redis-cli``; this is for the
provider itself, so the package needs no Redis client library.
"""

from __future__ import annotations

import socket
from pathlib import Path


class RespError(Exception):
    """An error reply (``-ERR ...``, ``-NOPERM ...``) from the server."""


def _encode(args: tuple[str, ...]) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def reply(self) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self._fill()
            data, self.buf = self.buf[:size], self.buf[size + 2 :]
            return data.decode(errors="replace")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.reply() for _ in range(size)]
        raise ConnectionError(f"unexpected reply from the server: {line[:80]!r}")


def call(
    address: Path | tuple[str, int],
    *commands: tuple[str, ...],
    user: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
) -> list[object]:
    """Send ``commands`` (after AUTH when a password is given); return their replies.

    An error reply to AUTH raises ``RespError``; other error replies are returned as
    ``RespError`` objects in the list. Connection problems raise ``OSError``.
    """
    family = socket.AF_UNIX if isinstance(address, Path) else socket.AF_INET
    target = str(address) if isinstance(address, Path) else address
    if password is not None:
        auth = ("AUTH", user, password) if user else ("AUTH", password)
        commands = (auth, *commands)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(target)
        sock.sendall(b"".join(_encode(c) for c in commands))
        reader = _Reader(sock)
        replies = []
        for _ in commands:
            try:
                replies.append(reader.reply())
            except ConnectionError:
                if commands[len(replies)][0].upper() == "SHUTDOWN":
                    replies.append(None)  # SHUTDOWN answers by closing the connection
                    break
                raise
    if password is not None:
        if isinstance(replies[0], RespError):
            raise replies[0]
        replies = replies[1:]
    return replies


def info(text: str) -> dict[str, str]:
    """``INFO`` output as a dict (``redis_version`` -> ``7.0.15``)."""
    fields = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields
