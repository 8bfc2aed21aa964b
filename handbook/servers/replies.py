"""Which line of a redis-cli snippet the server rejected, decided from the protocol.

redis-cli prints an error reply differently by version and by command (on 6.2 some come
out without the ``(error)`` prefix), and exits 0 after one when it reads its commands
from stdin. So the success of a ``.redis`` snippet is not read from what redis-cli
printed: each line is split into arguments the way redis-cli splits it
(``split_args``, a port of its ``sdssplitargs``), sent again through redis-py as the same
user to the same server (the snippet's ``REDIS_URL``), and the reply's type decides: an
error reply fails the line. The reader's own run (redis-cli, stdin) comes first; sending
each line a second time is safe because runbook commands are meant to be repeatable.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

import redis
from redis import exceptions

ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}
SPACE = " \n\r\t\0"
# redis-py drops the error code of the replies it maps to an exception class: put it back,
# so that a message reads as the server's reply does ("NOPERM this user has...").
CODES = {
    exceptions.NoPermissionError: "NOPERM",
    exceptions.ReadOnlyError: "READONLY",
    exceptions.BusyLoadingError: "LOADING",
    exceptions.NoScriptError: "NOSCRIPT",
    exceptions.ExecAbortError: "EXECABORT",
    exceptions.OutOfMemoryError: "OOM",
    exceptions.AuthenticationError: "WRONGPASS",
    exceptions.AuthenticationWrongNumberOfArgsError: "ERR",
    exceptions.ModuleError: "ERR",
}


def split_args(line: str) -> list[str]:
    """``line`` as redis-cli's sdssplitargs reads it: words, "double-quoted" strings with
    C escapes (``\\n``, ``\\x41``), 'single-quoted' strings (only ``\\'`` escaped).

    Raises ValueError where redis-cli says "Invalid argument(s)" (unbalanced quotes, a
    closing quote not followed by a space).
    """
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in SPACE:
            i += 1
        if i >= n:
            return args
        word: list[str] = []
        quote = ""
        while True:
            if i >= n:
                if quote:
                    raise ValueError(f"unbalanced {quote} quotes in {line!r}")
                break
            char = line[i]
            if quote == '"':
                if char == "\\" and line[i + 1 : i + 2] == "x" and _hex(line[i + 2 : i + 4]):
                    word.append(chr(int(line[i + 2 : i + 4], 16)))
                    i += 3
                elif char == "\\" and i + 1 < n:
                    i += 1
                    word.append(ESCAPES.get(line[i], line[i]))
                elif char == '"':
                    _closing(line, i)
                    i += 1
                    break
                else:
                    word.append(char)
            elif quote == "'":
                if char == "\\" and line[i + 1 : i + 2] == "'":
                    i += 1
                    word.append("'")
                elif char == "'":
                    _closing(line, i)
                    i += 1
                    break
                else:
                    word.append(char)
            elif char in SPACE:
                break
            elif char in "\"'":
                quote = char
            else:
                word.append(char)
            i += 1
        args.append("".join(word))


def _hex(text: str) -> bool:
    return len(text) == 2 and all(c in string.hexdigits for c in text)


def _closing(line: str, index: int) -> None:
    if index + 1 < len(line) and line[index + 1] not in SPACE:
        raise ValueError(f"a closing quote must be followed by a space in {line!r}")


def reply_text(error: redis.ResponseError) -> str:
    """The error reply as the server sent it: its code, then the message."""
    text = str(error)
    code = CODES.get(type(error))
    if code is None:
        code = "" if re.match(r"[A-Z]+ ", text) else "ERR"
    return f"{code} {text}".strip()


def first_error(lines: Iterable[tuple[int, str]], url: str) -> tuple[int, str] | None:
    """Send each ``(line number, text)`` of a snippet through redis-py to ``url`` (as the
    user it names); the first line whose reply is an error, with the server's message.

    A connection or login that fails is the first line's error.
    """
    lines = [(number, text) for number, text in lines if text.strip()]
    if not lines:
        return None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return lines[0][0], "REDIS_URL is not set (redis://user:password@host:port/0)"
    client = redis.Redis.from_url(url, protocol=2, driver_info=None, socket_timeout=30)
    try:
        connection = client.connection_pool.get_connection()
    except redis.RedisError as exc:
        client.close()
        return lines[0][0], f"cannot connect as the snippet's user: {exc}"
    try:
        for number, text in lines:
            try:
                args = split_args(text)
            except ValueError as exc:
                return number, f"redis-cli cannot read this line: {exc}"
            try:
                connection.send_command(*args)
                connection.read_response()
            except redis.ResponseError as exc:
                return number, reply_text(exc)
    finally:
        client.connection_pool.release(connection)
        client.close()
    return None
