"""Run a redis-cli snippet: its body goes to ``redis-cli`` on stdin, one command a line.

redis-cli exits 0 after an error reply, so errors are found in the output. To tell
which line caused one, an ``ECHO`` marker is sent after every command on the same
connection; the reply between two markers belongs to one line of the file.
"""

from __future__ import annotations

import re

from handbook.runners.base import Outcome, Target, execute, no_variables
from handbook.snippet import Snippet

MARKER = "handbook-line-{}"
MARKER_REPLY = re.compile(r'^"handbook-line-(\d+)"$', re.M)
ERROR_REPLY = re.compile(r"^\s*(?:\d+\)\s+)*\(error\) (?P<msg>.*)$", re.M)
CLI_NOISE = re.compile(r"^Warning: Using a password with .*\n?", re.M)


def command(env: dict[str, str]) -> list[str]:
    url = env.get("REDIS_URL")
    return ["redis-cli", "--no-raw", *(["-u", url] if url else [])]


def run(snippet: Snippet, target: Target) -> Outcome:
    """redis-cli (from the target's PATH) to the target's REDIS_URL, one line at a time."""
    refused = no_variables(snippet, target)
    if refused:
        return refused
    lines = snippet.body().splitlines()
    feed = []
    for offset, line in enumerate(lines):
        if line.strip():
            feed += [line, f"ECHO {MARKER.format(snippet.body_start + offset)}"]
    result = execute(snippet, target, command(dict(target.env)), input="\n".join(feed) + "\n")
    if isinstance(result, Outcome):
        return result
    stdout = CLI_NOISE.sub("", result.stdout)
    stderr = CLI_NOISE.sub("", result.stderr)
    # Split the output at the markers: each chunk is the reply to one line of the file.
    replies: list[tuple[int, str]] = []
    start = 0
    for marker in MARKER_REPLY.finditer(stdout):
        replies.append((int(marker[1]), stdout[start : marker.start()]))
        start = marker.end() + 1
    output = "".join(reply for _, reply in replies)
    for line, reply in replies:
        error = ERROR_REPLY.search(reply)
        if error:
            message = f"{snippet.name}:{line}: {error['msg']} ({target.servers})"
            return Outcome(False, output, message, result.returncode)
    expected = sum(1 for line in lines if line.strip())
    if result.returncode != 0 or len(replies) != expected:
        detail = (stderr or stdout[start:]).strip() or f"redis-cli exited {result.returncode}"
        message = f"{snippet.name}:{snippet.body_start}: {detail} ({target.servers})"
        return Outcome(False, output, message, result.returncode)
    return Outcome(True, output, returncode=0)
