"""The bot's commands, in one place: the command menus (`handlers.menu`), /help
(`handlers.commands`) and the README's command table are all made from `COMMANDS`.

A new command is one entry here and one handler module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

# Where a command works.
Scope = Literal["private", "group", "both"]
# Who may use it in a group; in a private chat the user may use everything.
Who = Literal["anyone", "admins"]


@dataclass(frozen=True, slots=True)
class Words:
    """The same words in English and Chinese."""

    en: str
    zh: str

    def in_(self, language: str | None) -> str:
        return self.zh if language and language.lower().startswith("zh") else self.en


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    scope: Scope
    who: Who
    # what it does for anyone who may use it
    about: Words
    # what it does for those who administer the chat (a private chat's user, group
    # admins), when that is more; None: the same as `about`
    admin_about: Words | None = None
    # the arguments shown in /help, e.g. "<question>"
    args: Words | None = None
    # in the command menus (/start is Telegram's own entry point, not listed)
    in_menu: bool = True

    def usage(self, language: str | None = None) -> str:
        args = self.args.in_(language) if self.args else ""
        return f"/{self.name} {args}" if args else f"/{self.name}"

    def describe(self, language: str | None, *, administers: bool) -> str:
        words = self.admin_about if administers and self.admin_about else self.about
        return words.in_(language)

    def works_in(self, *, private: bool) -> bool:
        return self.scope == "both" or self.scope == ("private" if private else "group")


COMMANDS: tuple[Command, ...] = (
    Command(
        "start",
        "both",
        "anyone",
        Words("Greeting and the list of commands", "问候和命令列表"),
        in_menu=False,
    ),
    Command("help", "both", "anyone", Words("What I can do", "我能做什么")),
    Command(
        "ask",
        "group",
        "anyone",
        Words("Ask me something", "向我提问"),
        args=Words("<question>", "<问题>"),
    ),
    Command(
        "search",
        "both",
        "anyone",
        Words("Answer with a web search, sources linked", "联网搜索回答，附来源链接"),
        args=Words("<question>", "<问题>"),
    ),
    Command(
        "image",
        "both",
        "anyone",
        Words("Draw a picture", "画一张图"),
        args=Words("<description>", "<描述>"),
    ),
    Command(
        "stop",
        "both",
        "anyone",
        Words("Stop the answer to your question", "停止回答你的问题"),
        admin_about=Words("Stop the answer being written", "停止正在生成的回答"),
    ),
    Command(
        "reset",
        "both",
        "admins",
        Words("Forget this conversation (the persona stays)", "清空本对话（保留人设）"),
    ),
    Command(
        "persona",
        "both",
        "anyone",
        Words("Show my persona here", "查看这里的人设"),
        admin_about=Words(
            "Show or set my persona: /persona <text>, reset, list, use <name>",
            "查看或设置人设：/persona <文本>、reset、list、use <名称>",
        ),
    ),
    Command(
        "model",
        "both",
        "anyone",
        Words("Show the model that answers here", "查看这里使用的模型"),
        admin_about=Words(
            "Show or switch the model that answers here: /model <name>",
            "查看或切换这里使用的模型：/model <名称>",
        ),
    ),
    Command(
        "think",
        "both",
        "anyone",
        Words("Whether the model thinks before answering", "模型是否先思考再回答"),
        admin_about=Words(
            "Turn the model's thinking on, off or auto: /think on|off|auto",
            "开启、关闭思考或交给模型：/think on|off|auto",
        ),
    ),
    Command(
        "effort",
        "both",
        "anyone",
        Words("How hard the model thinks", "模型的思考强度"),
        admin_about=Words(
            "Set how hard the model thinks: /effort low|medium|high|...|auto",
            "设置思考强度：/effort low|medium|high|...|auto",
        ),
    ),
    Command(
        "reasoning",
        "both",
        "anyone",
        Words("Whether answers show the model's reasoning", "回答是否显示模型的思考过程"),
        admin_about=Words(
            "Show the reasoning folded above answers, or hide it: /reasoning show|hide",
            "在回答上方折叠显示思考过程，或隐藏：/reasoning show|hide",
        ),
    ),
    Command(
        "websearch",
        "both",
        "anyone",
        Words("Whether every question searches the web", "是否每个问题都联网搜索"),
        admin_about=Words(
            "Search the web for every question: /websearch on|off",
            "每个问题都联网搜索：/websearch on|off",
        ),
    ),
    Command(
        "listen",
        "group",
        "admins",
        Words("Keep unaddressed group messages as context", "记录群里未@我的消息作为上下文"),
        args=Words("on|off", "on|off"),
    ),
    Command("usage", "both", "anyone", Words("Your token usage", "你的 token 用量")),
)


def commands_for(*, private: bool, administers: bool) -> Iterator[Command]:
    """The commands someone may use in a private chat or a group, in registry order."""
    for command in COMMANDS:
        if command.works_in(private=private) and (command.who == "anyone" or administers):
            yield command


def help_lines(language: str | None, *, private: bool) -> tuple[list[str], list[str]]:
    """/help's command lines: (for everyone, for group admins only).

    In a private chat the user administers it: one list. In a group, the second list
    holds the admin-only commands and those that do more for admins.
    """
    everyone: list[str] = []
    admins: list[str] = []
    for command in commands_for(private=private, administers=True):
        if not command.in_menu:
            continue
        usage = command.usage(language)
        line = f"{usage} - {command.describe(language, administers=True)}"
        if private:
            everyone.append(line)
            continue
        if command.who == "anyone":
            everyone.append(f"{usage} - {command.describe(language, administers=False)}")
        if command.who == "admins" or command.admin_about is not None:
            admins.append(line)
    return everyone, admins


_WHERE = {"private": "private chat", "group": "groups", "both": "anywhere"}


def readme_table() -> str:
    """The README's command table (tests/test_commands.py keeps the README in step)."""
    rows = [
        "| command | where | who | what it does |",
        "|---|---|---|---|",
    ]
    for command in COMMANDS:
        what = command.about.en
        if command.admin_about is not None:
            more = command.admin_about.en
            what = f"{what}; group admins and private chats: {more[:1].lower()}{more[1:]}"
        who = "anyone"
        if command.who == "admins":
            who = "group admins" if command.scope == "group" else "group admins; private chats"
        usage = command.usage().replace("|", "\\|")
        what = what.replace("|", "\\|")
        rows.append(f"| `{usage}` | {_WHERE[command.scope]} | {who} | {what} |")
    return "\n".join(rows) + "\n"
