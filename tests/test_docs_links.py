"""The README is the front door: every relative link in it and in docs/ must lead somewhere.

Moving sections out of the README into docs/ makes dangling links easy to write and hard to see;
these tests read the Markdown files only (no project imports), so they take milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: [text](target) or ![alt](target "title"); the target is the first non-space run
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
COMMENT = re.compile(r"<!--.*?-->", re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def markdown_files() -> list[Path]:
    """The README and every Markdown page under docs/."""
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def prose(text: str) -> str:
    """The text a reader sees as Markdown: code blocks, code spans and comments removed."""
    return INLINE_CODE.sub("", COMMENT.sub("", FENCE.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    """Link targets in a file that point into the repository (not URLs, not mail addresses)."""
    targets = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def broken(path: Path, target: str) -> str | None:
    """Why a link target does not resolve, or None when it does."""
    file_part, _, anchor = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    if not dest.exists():
        return f"{where}: {target} -> no such file {dest}"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{where}: {target} -> no heading #{anchor} in {dest.name}"
    return None


def test_every_relative_link_in_readme_and_docs_resolves():
    problems = [p for f in markdown_files() for t in relative_links(f) if (p := broken(f, t))]
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_broken_link_and_a_broken_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading (`x/`)\n", encoding="utf-8")
    page.write_text("[ok](there.md#a-heading-x) [gone](missing.md) [bad](there.md#nope)\n"
                    "`[code](not-a-link.md)` [web](https://example.org)\n", encoding="utf-8")
    links = relative_links(page)
    assert links == ["there.md#a-heading-x", "missing.md", "there.md#nope"]
    assert [t for t in links if broken(page, t)] == ["missing.md", "there.md#nope"]


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [README.resolve()]
    while todo:
        page = todo.pop()
        if page in reached or page.suffix != ".md" or not page.exists():
            continue
        reached.add(page)
        todo += [(page.parent / t.partition("#")[0]).resolve() for t in relative_links(page) if t[0] != "#"]
    orphans = [str(p.relative_to(ROOT)) for p in markdown_files() if p.resolve() not in reached]
    assert not orphans, f"docs pages no link from README.md leads to: {orphans}"


def test_readme_stays_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    assert "make demo" in text and "make test" in text
