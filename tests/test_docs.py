"""The README and the reference in docs/: every relative link leads to a file, and the README stays a front door."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Beside the repository, not in it: the project's shared design documents (checked where they are present).
SHARED = ROOT.parent / "shared"

# [text](target) and [text](<target>), not images' alt text alone; the target ends at whitespace or ')'.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def relative_links(document: Path) -> list[str]:
    text = CODE.sub("", document.read_text(encoding="utf-8"))
    links = [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", target)]
    return [target.split("#", 1)[0] for target in links]


def test_relative_links__the_pattern_finds_links() -> None:
    assert relative_links(ROOT / "README.md")
    assert "docs/settings.md" in relative_links(ROOT / "README.md")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_relative_links__lead_to_files(document: Path) -> None:
    broken = []
    for target in relative_links(document):
        path = (document.parent / target).resolve()
        if path.is_relative_to(ROOT):
            if not path.exists():
                broken.append(target)
        elif path.is_relative_to(SHARED.resolve()):
            if SHARED.is_dir() and not path.exists():
                broken.append(target)
        else:
            broken.append(f"{target} (outside the repository and ../shared)")
    assert broken == []


def test_readme__stays_short_and_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 120
    linked = set(relative_links(ROOT / "README.md"))
    assert {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")} <= linked
