"""settings.toml is the one description of each setting: every setting the bot reads is
in it with a comment, and docs/configuration.md's tables are made from those comments."""

from __future__ import annotations

import tomllib
import typing
from typing import Any

from pydantic import AliasChoices, BaseModel

from bot.config import Settings
from bot.config.environment import _PROCESS_VARIABLES
from docs.settings_table import (
    CONFIGURATION,
    SETTINGS,
    SettingsDoc,
    read_settings,
    rewrite,
    settings_tables,
)

TOML = SETTINGS.read_text(encoding="utf-8")


def _doc() -> SettingsDoc:
    return read_settings(TOML)


def test_the_configuration_tables_are_settings_toml() -> None:
    in_step = settings_tables(TOML) in CONFIGURATION.read_text(encoding="utf-8")
    assert in_step, (
        "docs/configuration.md's settings tables are out of step with settings.toml: "
        "run `python docs/settings_table.py`"
    )


def test_every_setting_has_a_description() -> None:
    doc = _doc()
    keys = [*doc.environment, *(k for s in doc.sections for k in s.keys)]
    keys += [k for family in doc.families for k in family.keys]
    undescribed = [", ".join(key.names) for key in keys if not key.text.strip()]
    assert not undescribed, f"settings.toml: give these a comment: {undescribed}"


def _aliases(alias: object) -> set[str]:
    if isinstance(alias, str):
        return {alias}
    if isinstance(alias, AliasChoices):
        return {choice for choice in alias.choices if isinstance(choice, str)}
    return set()


def _entry_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``dict[str, Model]`` field (a family of tables)."""
    args = typing.get_args(annotation)
    model = args[1] if typing.get_origin(annotation) is dict and len(args) == 2 else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def test_the_tables_name_every_setting_the_bot_reads() -> None:
    doc = _doc()
    sections = {s.name: {name for k in s.keys for name in k.names} for s in doc.sections}
    families = {f.name: {name for k in f.keys for name in k.names} for f in doc.families}
    environment = {name for key in doc.environment for name in key.names}
    expected_environment = set(_PROCESS_VARIABLES)
    for name, info in Settings.model_fields.items():
        aliases = _aliases(info.validation_alias)
        annotation = info.annotation
        if aliases:
            expected_environment |= aliases
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model, documented, where = annotation, sections.pop(name, set()), f"[{name}]"
        else:
            entry = _entry_model(annotation)
            assert entry is not None, f"Settings.{name}: neither a section nor a family"
            model, documented, where = entry, families.pop(name, set()), f"[{name}.<name>]"
        read = set(model.model_fields)
        assert documented == read, (
            f"settings.toml {where}: not in the file {sorted(read - documented)}, "
            f"read by no setting {sorted(documented - read)}"
        )
    assert environment == expected_environment
    assert not sections, f"sections no setting reads: {sorted(sections)}"
    assert not families, f"tables no setting reads: {sorted(families)}"


def test_the_tables_read_what_toml_reads() -> None:
    data = tomllib.loads(TOML)
    for section in _doc().sections:
        configured = {k.names[0]: k.default for k in section.keys if k.default is not None}
        assert set(configured) == set(data[section.name]), section.name
        for name, raw in configured.items():
            assert tomllib.loads(f"v = {raw}")["v"] == data[section.name][name], name


SAMPLE = """\
# The first paragraph
# goes on here.
#
# From the environment:
#   ONE, TWO     either name
#   THREE        a long text
#                that goes on
[alpha]                    # the section's note
# above the key
size = 3                   # beside it
                           # and below it
name = "a # b"
# unset unless set
# limit = 8000

[beta]
flag = true

# A family of tables.
#   text   the words
[family."first.one"]
text = \"\"\"
# not a comment
\"\"\"

[family."second"]
text = "more"
"""


def test_the_comment_conventions() -> None:
    doc = read_settings(SAMPLE)
    assert doc.paragraphs == ["The first paragraph goes on here.", "From the environment:"]
    assert [(k.names, k.text) for k in doc.environment] == [
        (["ONE", "TWO"], "either name"),
        (["THREE"], "a long text that goes on"),
    ]
    alpha, beta = doc.sections
    assert alpha.note == "the section's note"
    assert [(k.names[0], k.default, k.text) for k in alpha.keys] == [
        ("size", "3", "above the key beside it and below it"),
        ("name", '"a # b"', ""),
        ("limit", None, "unset unless set"),
    ]
    assert alpha.keys[2].example == "8000"
    assert [k.names[0] for k in beta.keys] == ["flag"]
    (family,) = doc.families
    assert family.quoted
    assert family.paragraphs == ["A family of tables."]
    assert [(k.names, k.text) for k in family.keys] == [(["text"], "the words")]


def test_rewrite_replaces_only_the_generated_part() -> None:
    tables = settings_tables(SAMPLE)
    old = settings_tables(SAMPLE.replace("beside it", "old words"))
    document = f"# Configuration\n\nBefore.\n\n{old}\nAfter.\n"
    assert rewrite(document, tables) == f"# Configuration\n\nBefore.\n\n{tables}\nAfter.\n"
