"""``python -m handbook COMMAND``: the handbook's commands (``diagnose``)."""

from __future__ import annotations

import sys

COMMANDS = ("diagnose",)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m handbook {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    from handbook.incident.diagnose import main as diagnose

    return diagnose(args[1:])


if __name__ == "__main__":
    sys.exit(main())
