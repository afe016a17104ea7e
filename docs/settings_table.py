"""The settings tables of docs/configuration.md, made from settings.toml's comments.

settings.toml is the one description of every setting; the docs show it as tables.

    python docs/settings_table.py           rewrite the tables in docs/configuration.md
    python docs/settings_table.py --check   exit 1 when they are out of step

What is read from settings.toml:

- Before the first section: paragraphs (a lone ``#`` separates them), and the variables
  that come from the environment only, as key lines.
- A key's description: the comment lines directly above it, then its trailing comment,
  then indented comment lines right below it.
- ``# key = value`` inside a section: a key that is unset by default; the value shown is
  an example.
- A section's note: the comment lines directly above its header and its trailing comment.
- A family of tables (``[models."<name>"]``): the comment block above its first table,
  paragraphs then key lines.
- A key line: ``#   name[, name]  description``: three spaces after ``#``, two or more
  before the description; a line indented further continues it.

Only the standard library: it runs without the project installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "settings.toml"
CONFIGURATION = ROOT / "docs" / "configuration.md"

START = (
    "<!-- settings:start (made from settings.toml's comments by `python docs/settings_table.py`;"
    " tests/test_settings_table.py keeps it in step) -->"
)
END = "<!-- settings:end -->"

_HEADER = re.compile(r'^\[\s*([A-Za-z0-9_-]+)(?:\.\s*("[^"]*"|[A-Za-z0-9_-]+))?\s*\]$')
_KEY = re.compile(r"^([A-Za-z0-9_]+)\s*=\s*(.*)$")
_OPTIONAL_KEY = re.compile(r"^#\s*([a-z0-9_]+) = (.+)$")
_KEY_LINE = re.compile(r"^#   (\S+(?:, \S+)*)\s{2,}(\S.*)$")
_CONTINUED = re.compile(r"^#    \s*(\S.*)$")


@dataclass
class Key:
    names: list[str]
    text: str
    # the raw TOML value; None: unset unless configured
    default: str | None = None
    example: str | None = None


@dataclass
class Section:
    name: str
    note: str
    keys: list[Key] = field(default_factory=list)


@dataclass
class Family:
    """Tables of one kind, any number of them: ``[models."<name>"]``."""

    name: str
    quoted: bool
    paragraphs: list[str]
    keys: list[Key]


@dataclass
class SettingsDoc:
    paragraphs: list[str]
    environment: list[Key]
    sections: list[Section]
    families: list[Family]


def _split_comment(line: str) -> tuple[str, str]:
    """A TOML line as (code, trailing comment), a ``#`` inside a string being text."""
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(line):
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def _block(lines: list[str]) -> tuple[list[str], list[Key]]:
    """A comment block (lines still starting with ``#``) as paragraphs and key lines."""
    paragraphs: list[list[str]] = [[]]
    keys: list[Key] = []
    for line in lines:
        key_line = _KEY_LINE.match(line)
        continued = _CONTINUED.match(line)
        if key_line:
            names = key_line.group(1).split(", ")
            keys.append(Key(names, key_line.group(2).strip()))
        elif continued and keys:
            keys[-1].text += " " + continued.group(1).strip()
        elif line.strip() == "#":
            paragraphs.append([])
        else:
            paragraphs[-1].append(line.removeprefix("#").strip())
    return [" ".join(p) for p in paragraphs if p], keys


def _joined(*texts: str) -> str:
    return " ".join(text for text in texts if text)


def read_settings(toml_text: str) -> SettingsDoc:
    """What settings.toml's comments say about each setting."""
    lines = toml_text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
    paragraphs, environment = _block([line for line in lines[:first] if line.startswith("#")])
    doc = SettingsDoc(paragraphs, environment, [], [])
    comments: list[str] = []  # the block directly above the current line
    section: Section | None = None  # None: in a family's table
    last_key: Key | None = None  # an indented comment below it goes on with its text
    rest = iter(lines[first:])
    for raw in rest:
        line = raw.strip()
        if line.startswith("#") and raw[0].isspace() and last_key is not None:
            last_key.text = _joined(last_key.text, line.removeprefix("#").strip())
            continue
        last_key = None
        if not line:
            comments = []
        elif line.startswith("#"):
            optional = _OPTIONAL_KEY.match(line)
            if optional and section is not None:
                section.keys.append(
                    Key([optional.group(1)], _prose(comments), example=optional.group(2))
                )
                comments = []
            else:
                comments.append(line)
        else:
            code, trailing = _split_comment(line)
            header = _HEADER.match(code)
            if header:
                section = _open(doc, header.group(1), header.group(2), comments, trailing)
            else:
                last_key = _key(code, comments, trailing, rest)
                if section is not None:
                    section.keys.append(last_key)
            comments = []
    return doc


def _prose(comments: list[str]) -> str:
    return " ".join(line.removeprefix("#").strip() for line in comments)


def _open(
    doc: SettingsDoc, name: str, entry: str | None, comments: list[str], trailing: str
) -> Section | None:
    """The section a header opens; None for a table of a family."""
    if entry is None:
        section = Section(name, _joined(_prose(comments), trailing))
        doc.sections.append(section)
        return section
    if all(family.name != name for family in doc.families):
        paragraphs, keys = _block(comments)
        doc.families.append(Family(name, entry.startswith('"'), paragraphs, keys))
    return None


def _key(code: str, comments: list[str], trailing: str, rest: Iterator[str]) -> Key:
    match = _KEY.match(code)
    if match is None:
        raise ValueError(f"settings.toml: cannot read the line {code!r}")
    value = match.group(2)
    if value.startswith(('"""', "'''")) and value.count(value[:3]) == 1:
        for line in rest:  # a multi-line string: its lines are not settings
            if value[:3] in line:
                break
    return Key([match.group(1)], _joined(_prose(comments), trailing), default=value)


def _sentence(text: str) -> str:
    if not text:
        return ""
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _names(key: Key) -> str:
    return ", ".join(f"`{name}`" for name in key.names)


def render(doc: SettingsDoc) -> str:
    """The generated part of docs/configuration.md, markers included."""
    out = [START, ""]
    for paragraph in doc.paragraphs:
        out += [paragraph, ""]
    out += ["| variable | meaning |", "|---|---|"]
    out += [f"| {_names(key)} | {_cell(key.text)} |" for key in doc.environment]
    for section in doc.sections:
        out += ["", f"### `[{section.name}]`", ""]
        override = f"Environment variables: `{section.name.upper()}__<KEY>`."
        out += [_joined(_sentence(section.note), override), ""]
        out += ["| key | default | meaning |", "|---|---|---|"]
        for key in section.keys:
            default = "unset" if key.default is None else f"`{_cell(key.default)}`"
            text = key.text
            if key.example is not None:
                text = _joined(text, f"(e.g. `{key.example}`)")
            out.append(f"| {_names(key)} | {default} | {_cell(text)} |")
    for family in doc.families:
        entry = '"<name>"' if family.quoted else "<name>"
        out += ["", f"### `[{family.name}.{entry}]`", ""]
        for paragraph in family.paragraphs:
            out += [paragraph, ""]
        out += ["| key | meaning |", "|---|---|"]
        out += [f"| {_names(key)} | {_cell(key.text)} |" for key in family.keys]
    out += ["", END]
    return "\n".join(out) + "\n"


def settings_tables(toml_text: str) -> str:
    """The tables for this settings.toml text."""
    return render(read_settings(toml_text))


def rewrite(document: str, tables: str) -> str:
    """`document` with its generated part replaced by `tables`."""
    start = document.index(START)
    end = document.index(END, start) + len(END) + 1
    return document[:start] + tables + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is in step")
    args = parser.parse_args(argv)
    tables = settings_tables(SETTINGS.read_text(encoding="utf-8"))
    document = CONFIGURATION.read_text(encoding="utf-8")
    if tables in document:
        return 0
    if args.check:
        print("docs/configuration.md is out of step: run python docs/settings_table.py")
        return 1
    CONFIGURATION.write_text(rewrite(document, tables), encoding="utf-8")
    print("docs/configuration.md: settings tables rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
