"""Environment variables that look like settings but match none (``LLM__TEMPRATURE``).

pydantic-settings ignores what it does not know, so a typo in an override would go
unnoticed; `unknown_settings` finds them so the start-up can warn, one line each.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo

__all__ = ["UnknownSetting", "unknown_settings"]

# Read by `python -m bot` itself, outside the Settings model.
_PROCESS_VARIABLES = ("BOT_SETTINGS", "LOG_LEVEL", "LOG_FORMAT")
# Top-level names with these prefixes are ours, whatever follows.
_OUR_PREFIXES = ("TELEGRAM_", "ZHIPU_", "ZHIPUAI_")
# ...except Kubernetes' service links: a Service named "telegram-bot-api" puts
# TELEGRAM_BOT_API_SERVICE_HOST, TELEGRAM_BOT_API_PORT_8081_TCP... in every pod.
_SERVICE_LINK = re.compile(r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)\w*)?)$")
# How close a name must be to one of ours to count as a typo of it.
_TYPO_CUTOFF = 0.8


@dataclass(frozen=True)
class UnknownSetting:
    name: str
    suggestion: str | None  # the setting it most resembles


def unknown_settings(
    environ: Mapping[str, str], settings_model: type[BaseModel]
) -> list[UnknownSetting]:
    """The variables of `environ` that look like ours but that no setting reads."""
    top, sections = _known_names(settings_model)
    every_name = sorted(top | {f"{s}__{key}" for s, keys in sections.items() for key in keys or ()})
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if _looks_ours(upper, top, sections) and not _is_known(upper, top, sections):
            close = difflib.get_close_matches(upper, every_name, n=1, cutoff=0.6)
            found.append(UnknownSetting(name, close[0] if close else None))
    return found


def _looks_ours(name: str, top: set[str], sections: dict[str, set[str] | None]) -> bool:
    if "__" in name:
        section = name.split("__", 1)[0]
        return bool(difflib.get_close_matches(section, sections, n=1, cutoff=_TYPO_CUTOFF))
    if name.startswith(_OUR_PREFIXES):
        return not _SERVICE_LINK.search(name)
    return bool(difflib.get_close_matches(name, top, n=1, cutoff=_TYPO_CUTOFF))


def _is_known(name: str, top: set[str], sections: dict[str, set[str] | None]) -> bool:
    if name in top:
        return True
    section, _, rest = name.partition("__")
    if section not in sections:
        return False
    keys = sections[section]
    if keys is None:  # a table of entries ([personas.<name>], [prices.<model>])
        return bool(rest)
    return rest in keys


def _known_names(model: type[BaseModel]) -> tuple[set[str], dict[str, set[str] | None]]:
    """The top-level variable names and, per section, its keys (None: any key)."""
    top = set(_PROCESS_VARIABLES)
    sections: dict[str, set[str] | None] = {}
    for name, field in model.model_fields.items():
        aliases = _aliases(field)
        if aliases:
            top.update(alias.upper() for alias in aliases)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            sections[name.upper()] = {key.upper() for key in field.annotation.model_fields}
        else:
            sections[name.upper()] = None
    return top, sections


def _aliases(field: FieldInfo) -> Iterable[str]:
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return []
