#!/usr/bin/env python3
"""Checks every project include against the README's layout table.

The table under "## Layout" in README.md is the rule: each row names a folder,
what it holds, and the folders its files may include. A file belongs to the
deepest folder of the table that contains it; it may include files of its own
folder and of the folders its row names ("any" for every folder). A source file
outside every folder, an include that names no file of the tree, and an include
against the table are errors, each printed as one line; the exit status is 1
when there is any.

--plant FILE:INCLUDE adds one include to FILE before checking, so that a test
can show that a broken direction is caught.
"""
import argparse
import pathlib
import re
import sys

SOURCE = re.compile(r"\.(h|cpp|cu)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
CODE = re.compile(r"`([^`]+)`")
# The top-level folders whose sources must each lie in a folder of the table.
TOP = ("kernels", "engine", "io", "tools", "bench", "tests")


def read_rules(readme):
    """{folder: set of folders it may include, or None for any}, from the table."""
    text = readme.read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        folder = CODE.findall(cells[0])[0]
        allowed = CODE.findall(cells[2])
        rules[folder] = None if cells[2] == "any" else set(allowed)
    if not rules:
        sys.exit(f"{readme}: no layout table (| folder | holds | may include |) under '## Layout'")
    return rules


def room_of(path, rules):
    rooms = [r for r in rules if path.startswith(r)]
    return max(rooms, key=len) if rooms else None


def check(root, rules, planted):
    files = sorted(str(p.relative_to(root)) for top in TOP for p in (root / top).rglob("*")
                   if p.is_file() and SOURCE.search(p.name))
    errors = []
    for path in files:
        room = room_of(path, rules)
        if room is None:
            errors.append(f"{path}: in no folder of the README's layout table; add its folder to the table")
            continue
        includes = INCLUDE.findall((root / path).read_text(errors="replace"))
        includes += planted.get(path, [])
        allowed = rules[room]
        for inc in includes:
            if not (root / inc).is_file():
                errors.append(f"{path} includes {inc}, which is no file of the tree")
                continue
            target = room_of(inc, rules)
            if allowed is None or target == room or target in allowed:
                continue
            errors.append(f"{path} includes {inc}: {room} may include only {', '.join(sorted(allowed)) or 'its own files'}"
                          f" (README, Layout); move the code or change the table")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent, type=pathlib.Path)
    parser.add_argument("--plant", action="append", default=[], metavar="FILE:INCLUDE")
    args = parser.parse_args()
    planted = {}
    for p in args.plant:
        file, inc = p.split(":", 1)
        planted.setdefault(file, []).append(inc)
    rules = read_rules(args.root / "README.md")
    errors = check(args.root, rules, planted)
    for e in errors:
        print(e)
    print(f"layout: {len(errors)} error(s) over the {len(rules)} folders of the README's table")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
