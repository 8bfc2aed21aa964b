"""Run a redis-cli snippet: its body goes to ``redis-cli`` on stdin, one command a line.

redis-cli exits 0 after an error reply and prints error replies differently by version,
so success is decided from the protocol (``handbook.servers.replies``): each line is sent
again through redis-py as the same user, and the first error reply names its line.
"""

from __future__ import annotations

import re

from handbook.runners.base import Outcome, Target, execute, no_variables
from handbook.servers import replies
from handbook.snippet import Snippet

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
    result = execute(snippet, target, command(dict(target.env)), input=snippet.body())
    if isinstance(result, Outcome):
        return result
    output = CLI_NOISE.sub("", result.stdout)
    stderr = CLI_NOISE.sub("", result.stderr)
    numbered = [(snippet.body_start + offset, line) for offset, line in enumerate(lines)]
    error = replies.first_error(numbered, dict(target.env).get("REDIS_URL", ""))
    if error:
        message = f"{snippet.name}:{error[0]}: {error[1]} ({target.servers})"
        return Outcome(False, output, message, result.returncode)
    if result.returncode != 0:
        detail = stderr.strip() or f"redis-cli exited {result.returncode}"
        message = f"{snippet.name}:{snippet.body_start}: {detail} ({target.servers})"
        return Outcome(False, output + stderr, message, result.returncode)
    return Outcome(True, output, returncode=0)
