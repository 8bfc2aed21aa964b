"""``python -m handbook COMMAND``: the handbook's commands (``diagnose``, ``respond``)."""

from __future__ import annotations

import sys

COMMANDS = ("diagnose", "respond")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m handbook {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    if args[0] == "respond":
        from handbook.incident.respond import main as respond

        return respond(args[1:])
    from handbook.incident.diagnose import main as diagnose

    return diagnose(args[1:])


if __name__ == "__main__":
    sys.exit(main())
