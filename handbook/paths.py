"""Where things live in the repository."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"
CONF = ROOT / "conf"
BUILD = ROOT / "build"
REPORT = BUILD / "verification.json"


def rel(path: Path | str, root: Path = ROOT) -> str:
    """A path relative to the project root, for messages (absolute if outside)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
