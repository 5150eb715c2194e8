"""The user documentation holds together: README.md and docs/*.md link only to files (and headings) that
exist, and the README stays a short front page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 260

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where `[x](y)` is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for title in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]


def test_the_docs_exist() -> None:
    names = {p.name for p in PAGES}
    assert {"README.md", "architecture.md", "http-api.md", "websocket.md", "configuration.md"} <= names
    assert {"model-card.md", "benchmarks.md", "troubleshooting.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_point_to_existing_files_and_headings(page: Path) -> None:
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_readme_is_a_short_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_link_check_sees_links_and_skips_code() -> None:
    # the checker itself: a link in prose is seen, one in a code block or span is not, URLs are skipped
    page = "[a](docs/x.md) `[b](y.md)` [c](https://example.org)\n```\n[d](z.md)\n```\n![e](img.png#f)\n"
    assert [t for t in LINK.findall(_prose(page)) if not t.startswith("http")] == ["docs/x.md", "img.png#f"]


@pytest.mark.parametrize("page", PAGES + [ROOT / "models" / "weights" / "README.md"], ids=lambda p: p.name)
def test_code_fences_are_balanced(page: Path) -> None:
    # an unclosed fence turns the rest of the page into one code block
    fences = [line for line in page.read_text().splitlines() if line.lstrip().startswith(("```", "~~~"))]
    assert len(fences) % 2 == 0, f"{page.name}: {len(fences)} code fences (one is not closed)"
