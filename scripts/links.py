#!/usr/bin/env python3
"""Checks the links of the project's Markdown pages (README.md, the pages beside it and
docs/): every relative link names a file that exists, and every #anchor a heading of its
page (GitHub's slugs). External links are not fetched. Exits 1, naming each broken one."""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def pages():
    for name in sorted(os.listdir(ROOT)):
        if name.endswith(".md"):
            yield os.path.join(ROOT, name)
    docs = os.path.join(ROOT, "docs")
    for folder, _, files in os.walk(docs):
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(folder, name)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"`|\*|_(?=\W)|(?<=\W)_", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found, seen, fenced = set(), {}, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line):
                fenced = not fenced
            if fenced or not line.startswith("#"):
                continue
            base = slug(line.lstrip("#"))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path):
    fenced = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                fenced = not fenced
            if fenced:
                continue
            for match in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
                yield number, match.group(1) or match.group(2)


def main():
    broken = []
    for page in pages():
        for number, target in links(page):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            where = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
            name = f"{os.path.relpath(page, ROOT)}:{number}: {target}"
            if not os.path.exists(where):
                broken.append(f"{name} (no such file)")
            elif anchor and where.endswith(".md") and anchor not in anchors(where):
                broken.append(f"{name} (no such heading)")
    for line in broken:
        print(f"links: {line}")
    checked = sum(1 for page in pages() for _ in links(page))
    print(f"links: {checked} links in {len(list(pages()))} pages, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
