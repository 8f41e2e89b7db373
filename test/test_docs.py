"""The documentation lives in the repository: every link resolves inside it, nothing points outside."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_of_the_readme_and_docs_resolves_inside_the_repository() -> None:
    broken = []
    for page in _markdown_files():
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.exists() or REPO not in resolved.parents:
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []


def test_the_readme_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [p.name for p in (REPO / "docs").glob("*.md")
               if p.name != "README.md" and f"docs/{p.name}" not in readme]
    assert missing == []


def test_no_source_or_page_points_to_a_file_outside_the_repository() -> None:
    pages = [*_markdown_files(), *sorted((REPO / "unified_perception").rglob("*.py"))]
    outside = [str(p.relative_to(REPO)) for p in pages if re.search(r"\.\./shared|/work/", p.read_text())]
    assert outside == []
