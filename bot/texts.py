"""Everything the bot says to people, in English and Chinese.

The language follows the Telegram user's ``language_code``: Chinese for ``zh*``,
English otherwise.
"""

from __future__ import annotations

from typing import Final

_EN: Final[dict[str, str]] = {
    "start": (
        "Hi! I'm a GLM-4 assistant. Write me anything and I'll answer as I think.\n"
        "I remember our conversation until you /reset it."
    ),
    "start_group": "Hi! I'm a GLM-4 assistant. This group shares one conversation with me.",
    "help_commands": "Commands:",
    "help_admins": "For group admins:",
    "help_private_groups": (
        "In a group, mention me (@{bot} your question), reply to one of my messages "
        "or write /ask <question>."
    ),
    "help_group": (
        "I answer when you mention me (@{bot} your question), reply to one of my messages "
        "or write /ask <question>."
    ),
    "reset_done": "Done: this conversation is forgotten. The persona stays.",
    "unsupported": "I can read text and photos. Please write your question or send a picture.",
    "empty_mention": "Ask me something after the mention, e.g. @{bot} what is a monad?",
    "empty_ask": "Write your question after /ask, e.g. /ask what is a monad?",
    "storage_unavailable": (
        "⚠️ My memory store is temporarily unavailable. Please try again in a minute."
    ),
    "history_not_saved": "⚠️ This answer could not be saved to the conversation history.",
    "busy_retry": "⚠️ GLM is overloaded right now. Please try again in a minute.",
    "upstream_error": "⚠️ GLM did not answer this time. Please try again.",
    "timeout": "⚠️ GLM took too long to answer. Please try again.",
    "interrupted": "⚠️ The answer was interrupted. Please ask again to continue.",
    "filtered": "⚠️ This answer was blocked by the content filter.",
    "prompt_too_long": "⚠️ This message is too long for the model. Please shorten it.",
    "service_unavailable": (
        "⚠️ The assistant is unavailable at the moment. The owner has been notified."
    ),
    "bad_request": "⚠️ Something went wrong on my side. Please try again.",
    "stopped": "⏹ Stopped",
    "service_unavailable_quiet": "⚠️ The assistant is unavailable at the moment.",
    "unexpected_error": "⚠️ Sorry, something went wrong on my side. Please try again.",
    "dropped_by_stop": "⏹ Not answered: /stop cleared the questions waiting in line.",
    "length_no_content": (
        "⚠️ The model used its whole answer limit before writing an answer. Please ask again."
    ),
    "empty_answer": "⚠️ The model returned no answer. Please try again.",
    "sources": "Sources",
    "cut_at_length": "⚠️ The answer reached its length limit and was cut here.",
    "question_truncated": "ℹ️ Your message was too long and was shortened to fit the model.",
    "nothing_to_stop": "Nothing is being written right now.",
    "stop_not_allowed": "Only the person who asked, or a group admin, can stop this answer.",
    "stopping": "Stopping.",
    "admins_only": "Only this group's admins can do that.",
    "persona_admins_only": "Only this group's admins can change the persona.",
    "persona_set": "Persona saved. The conversation history is kept; /reset clears it.",
    "persona_reset": "Persona reset to the default.",
    "persona_too_long": "That persona is too long: at most {limit} characters. Nothing changed.",
    "persona_empty": "The persona text is empty. Nothing changed.",
    "persona_unknown_preset": "No such preset. See /persona list. Nothing changed.",
    "persona_presets": "Presets (use one with /persona use <name>):",
    "persona_presets_group": "Presets (group admins pick one with /persona use <name>):",
    "persona_no_presets": "No presets are configured.",
    "persona_none": "No persona is set here. Set one with /persona <text>.",
    "persona_none_group": "No persona is set here. Group admins can set one with /persona <text>.",
    "persona_default": "The default persona is in force here:",
    "persona_current": "Persona set by {who} on {when}",
    "listen_on": "I keep this group's messages as context, and answer only when addressed.",
    "listen_off": "I only read messages addressed to me in this group.",
    "listen_usage": "Usage: /listen on, /listen off, or /listen to see the current setting.",
    "temporarily_unavailable": "⚠️ GLM is temporarily unavailable. Please try again in a minute.",
    "answer_lost_on_restart": (
        "⚠️ I was restarted while answering your message “{preview}”, so the answer was lost. "
        "Please send it again."
    ),
    "owner_alert_no_balance": (
        "⚠️ GLM refuses requests: the Zhipu account has no balance left. Users are told the "
        "assistant is unavailable until it is topped up.\nDetails: {detail}"
    ),
    "owner_alert_auth": (
        "⚠️ GLM rejects the API key (ZHIPU_API_KEY). Users are told the assistant is "
        "unavailable until the key is fixed.\nDetails: {detail}"
    ),
    "access_denied": (
        "Sorry, I'm a private bot and can't answer you here. If you should have access, ask "
        "my owner to add your user id {user_id} (or this chat, {chat_id})."
    ),
    "limit_user_rate": (
        "⏳ You're writing faster than I may answer: at most {limit} messages a minute. "
        "Try again in {wait}."
    ),
    "limit_chat_rate": (
        "⏳ This chat sends me more than {limit} messages a minute. Try again in {wait}."
    ),
    "limit_user_tokens": (
        "You've used your daily quota of {limit} tokens. It resets at 00:00 UTC, in {wait}."
    ),
    "limit_chat_tokens": (
        "This chat has used its daily quota of {limit} tokens. It resets at 00:00 UTC, in {wait}."
    ),
    "duration_seconds": "{n} s",
    "duration_minutes": "{n} min",
    "duration_hours": "{h} h {m} min",
    "usage_you": "📊 Your usage",
    "usage_chat": "👥 This chat",
    "usage_bot": "🤖 The whole bot",
    "usage_today": "Today: {summary}",
    "usage_month": "This month: {summary}",
    "usage_summary": (
        "{tokens} ({prompt} prompt + {completion} answer) in {requests}, ≈ {cost} CNY"
    ),
    "usage_summary_reasoning": (
        "{tokens} ({prompt} prompt + {completion} answer, {reasoning} of it reasoning) "
        "in {requests}, ≈ {cost} CNY"
    ),
    "tokens_one": "{n} token",
    "tokens_other": "{n} tokens",
    "requests_one": "{n} request",
    "requests_other": "{n} requests",
    "usage_nothing": "nothing yet",
    "usage_quota": "Daily quota: {spent} of {limit} tokens used; it resets in {wait} (00:00 UTC).",
    "usage_models": "By model this month:",
    "usage_top_chats": "Top chats this month:",
    "usage_row": "{name}: {tokens}, ≈ {cost} CNY",
    "usage_totals_private": "Bot totals are shown only in a private chat with me.",
    "model_current": "Model here: {model}. Choose another:",
    "model_set": "Done: {model} answers here from now on.",
    "model_unknown": 'There is no chat model "{name}". Choose one of: {names}. Nothing changed.',
    "model_admins_only": "Only this group's admins can change the model.",
    "model_free": "free",
    "empty_search": "Write your question after /search, e.g. /search what happened in tech today?",
    "search_unavailable": "No model here can search the web. Nothing was asked.",
    "settings_admins_only": "Only this group's admins can change how I answer here.",
    "setting_unknown": "“{value}” is not one of the choices. Nothing changed.",
    "setting_saved": "Saved.",
    "think_state": "Thinking here: {state}. Change it with /think on, /think off or /think auto.",
    "think_on": "on (the model thinks before it answers)",
    "think_off": "off (quicker answers)",
    "think_auto": "auto (the model's default)",
    "think_always": (
        "{model} always thinks before it answers: that cannot be turned off. "
        "/model offers other models."
    ),
    "think_never": "{model} answers without thinking. /model offers models that think.",
    "effort_state": "Reasoning effort here: {state}. Change it with /effort {levels} or auto.",
    "effort_auto": "auto (the model's default)",
    "effort_unsupported": ("{model} does not take a reasoning effort. /model offers other models."),
    "reasoning_state": (
        "The model's reasoning here: {state}. Change it with /reasoning show or /reasoning hide."
    ),
    "reasoning_show": "folded into a quote above each answer",
    "reasoning_hide": "left out of the answers",
    "websearch_state": (
        "Web search on every question here: {state}. Change it with /websearch on or "
        "/websearch off. /search <question> searches for one question."
    ),
    "websearch_on": "on",
    "websearch_off": "off",
    "websearch_unsupported": (
        "{model} cannot search the web. /search <question> still answers one question with "
        "a model that can; /model offers other models."
    ),
    # voice messages and documents (bot/media/inputs.py)
    "voice_placeholder": "🎤 (voice message)",
    "voice_unavailable": "🎤 Voice messages are not set up on this bot. Please type your question.",
    "voice_too_long": (
        "🎤 This recording is too long for me: at most {limit} seconds. "
        "Please send a shorter one, or type your question."
    ),
    "voice_unreadable": (
        "🎤 I could not play this audio (the file seems damaged or is not audio). "
        "Please record it again or type your question."
    ),
    "voice_no_speech": "🎤 I could not make out any words in this recording. Please try again.",
    "media_too_large": (
        "📎 This file is larger than 20 MB, the most Telegram lets a bot download. "
        "Please send a smaller one."
    ),
    "media_unavailable": "📎 I could not download this file from Telegram. Please send it again.",
    "document_question": "Summarise this document.",
    "document_unsupported": (
        "📎 I can read text files (plain text, Markdown, CSV, JSON, source code), PDF and "
        "Word (.docx) documents, but not this kind of file."
    ),
    "document_unreadable": (
        "📎 I found no text in {name}: it may be damaged, password-protected, or scanned "
        "pages without a text layer."
    ),
    "document_cut": (
        "📄 {name} is too long to read whole: I read the first {percent}% "
        "({read} of {total} characters)."
    ),
    "empty_image": "Describe the picture after /image, e.g. /image a red fox in the snow",
    "pictures_unavailable": "⚠️ Pictures are not available: no image model is configured.",
    "image_refused": (
        "⚠️ The image model refused this description (content filter). "
        "Please describe the picture differently."
    ),
    "image_failed": "⚠️ The picture could not be drawn this time. Please try again.",
    "image_bad_request": "⚠️ The image model did not accept this description. Try a shorter one.",
    "image_not_sent": "⚠️ The picture was drawn, but Telegram would not take it. Please try again.",
    "image_stopped": "⏹ Stopped: no picture.",
    "pictures_one": "{n} picture",
    "pictures_other": "{n} pictures",
    "file_too_large": (
        "⚠️ This file is larger than 20 MB, the most a bot may download from Telegram. "
        "Please send a smaller one."
    ),
    "image_describe": "Describe this image.",
    "images_describe": "Describe these images.",
    "image_unavailable": "⚠️ I couldn't download your image from Telegram. Please send it again.",
    "image_unreadable": "⚠️ I couldn't read this image. Please send a JPEG or PNG photo.",
    "no_vision_model": "⚠️ None of my models can see images, so I can't look at photos here.",
}

_ZH: Final[dict[str, str]] = {
    "start": (
        "你好！我是 GLM-4 助手。发给我任何问题，我会边想边回答。\n"
        "在你使用 /reset 之前，我会记住我们的对话。"
    ),
    "start_group": "你好！我是 GLM-4 助手。本群的所有人与我共享一个对话。",
    "help_commands": "命令：",
    "help_admins": "群管理员可用：",
    "help_private_groups": (
        "在群里，@我并写下问题（@{bot} 你的问题）、回复我的消息，或使用 /ask <问题>。"
    ),
    "help_group": (
        "@我并写下问题（@{bot} 你的问题）、回复我的消息，或使用 /ask <问题>，我就会回答。"
    ),
    "reset_done": "好的，本对话已清空，人设保留。",
    "unsupported": "我能阅读文字和图片，请用文字提问或发送图片。",
    "empty_mention": "请在@我之后写下问题，例如：@{bot} 什么是单子？",
    "empty_ask": "请在 /ask 之后写下问题，例如：/ask 什么是单子？",
    "storage_unavailable": "⚠️ 记忆存储暂时不可用，请稍后再试。",
    "history_not_saved": "⚠️ 这条回答未能保存到对话历史。",
    "busy_retry": "⚠️ GLM 当前繁忙，请稍后再试。",
    "upstream_error": "⚠️ GLM 这次没有回应，请再试一次。",
    "timeout": "⚠️ GLM 响应超时，请再试一次。",
    "interrupted": "⚠️ 回答被中断了，请重新提问以继续。",
    "filtered": "⚠️ 该回答被内容安全策略拦截。",
    "prompt_too_long": "⚠️ 这条消息对模型来说太长了，请缩短后再试。",
    "service_unavailable": "⚠️ 助手暂时不可用，已通知管理员。",
    "bad_request": "⚠️ 我这边出了点问题，请再试一次。",
    "stopped": "⏹ 已停止",
    "service_unavailable_quiet": "⚠️ 助手暂时不可用。",
    "unexpected_error": "⚠️ 抱歉，我这边出了点问题，请再试一次。",
    "dropped_by_stop": "⏹ 未回答：/stop 已清除排队中的问题。",
    "length_no_content": "⚠️ 模型在写出回答之前用完了回答长度上限，请重新提问。",
    "empty_answer": "⚠️ 模型没有返回回答，请再试一次。",
    "sources": "来源",
    "cut_at_length": "⚠️ 回答达到长度上限，在此截断。",
    "question_truncated": "ℹ️ 你的消息太长，已截短以适应模型。",
    "nothing_to_stop": "当前没有正在生成的回答。",
    "stop_not_allowed": "只有提问者或群管理员可以停止这条回答。",
    "stopping": "正在停止。",
    "admins_only": "只有本群管理员可以这样做。",
    "persona_admins_only": "只有本群管理员可以修改人设。",
    "persona_set": "人设已保存。对话历史保留；使用 /reset 清空。",
    "persona_reset": "人设已恢复为默认。",
    "persona_too_long": "人设太长：最多 {limit} 个字符。未做任何更改。",
    "persona_empty": "人设内容为空。未做任何更改。",
    "persona_unknown_preset": "没有这个预设，请查看 /persona list。未做任何更改。",
    "persona_presets": "预设（使用 /persona use <名称> 选择）：",
    "persona_presets_group": "预设（群管理员可使用 /persona use <名称> 选择）：",
    "persona_no_presets": "没有配置预设。",
    "persona_none": "这里还没有设置人设。使用 /persona <文本> 设置。",
    "persona_none_group": "这里还没有设置人设。群管理员可以使用 /persona <文本> 设置。",
    "persona_default": "当前使用默认人设：",
    "persona_current": "人设由 {who} 于 {when} 设置",
    "listen_on": "我会把本群消息记作上下文，但只在被@或回复时回答。",
    "listen_off": "在本群我只阅读@我或回复我的消息。",
    "listen_usage": "用法：/listen on、/listen off，或 /listen 查看当前设置。",
    "temporarily_unavailable": "⚠️ GLM 暂时不可用，请稍后再试。",
    "answer_lost_on_restart": "⚠️ 回答你的消息“{preview}”时我重启了，回答没有完成。请重新发送。",
    "owner_alert_no_balance": (
        "⚠️ GLM 拒绝请求：智谱账户余额不足。充值前，用户会收到助手暂时不可用的提示。\n详情：{detail}"
    ),
    "owner_alert_auth": (
        "⚠️ GLM 拒绝了 API 密钥（ZHIPU_API_KEY）。"
        "修复前，用户会收到助手暂时不可用的提示。\n详情：{detail}"
    ),
    "access_denied": (
        "抱歉，这是一个私有机器人，我不能在这里回答你。如需使用，请联系机器人主人"
        "添加你的用户 ID {user_id}（或本聊天 {chat_id}）。"
    ),
    "limit_user_rate": "⏳ 你发消息太快了：每分钟最多 {limit} 条。请在 {wait}后再试。",
    "limit_chat_rate": "⏳ 本聊天发给我的消息太多了：每分钟最多 {limit} 条。请在 {wait}后再试。",
    "limit_user_tokens": "你今天的 {limit} token 额度已用完，将于 UTC 00:00（{wait}后）重置。",
    "limit_chat_tokens": "本聊天今天的 {limit} token 额度已用完，将于 UTC 00:00（{wait}后）重置。",
    "duration_seconds": "{n} 秒",
    "duration_minutes": "{n} 分钟",
    "duration_hours": "{h} 小时 {m} 分钟",
    "usage_you": "📊 你的用量",
    "usage_chat": "👥 本聊天",
    "usage_bot": "🤖 整个机器人",
    "usage_today": "今天：{summary}",
    "usage_month": "本月：{summary}",
    "usage_summary": "{tokens}（提问 {prompt} + 回答 {completion}），{requests}，约 {cost} 元",
    "usage_summary_reasoning": (
        "{tokens}（提问 {prompt} + 回答 {completion}，其中思考 {reasoning}），"
        "{requests}，约 {cost} 元"
    ),
    "tokens_one": "{n} token",
    "tokens_other": "{n} token",
    "requests_one": "{n} 次请求",
    "requests_other": "{n} 次请求",
    "usage_nothing": "暂无",
    "usage_quota": "每日额度：已用 {spent} / {limit} token，{wait}后（UTC 00:00）重置。",
    "usage_models": "本月各模型：",
    "usage_top_chats": "本月用量最多的聊天：",
    "usage_row": "{name}：{tokens}，约 {cost} 元",
    "usage_totals_private": "机器人总用量只在与我的私聊中显示。",
    "model_current": "本聊天的模型：{model}。选择其他模型：",
    "model_set": "好的，从现在起本聊天由 {model} 回答。",
    "model_unknown": "没有名为“{name}”的对话模型。可选：{names}。未做任何更改。",
    "model_admins_only": "只有本群管理员可以更换模型。",
    "model_free": "免费",
    "empty_search": "请在 /search 之后写下问题，例如：/search 今天科技圈有什么新闻？",
    "search_unavailable": "这里没有可以联网搜索的模型，问题未发送。",
    "settings_admins_only": "只有本群管理员可以更改我在这里的回答方式。",
    "setting_unknown": "“{value}”不是可选项。未做任何更改。",
    "setting_saved": "已保存。",
    "think_state": "这里的思考模式：{state}。使用 /think on、/think off 或 /think auto 更改。",
    "think_on": "开启（模型先思考再回答）",
    "think_off": "关闭（回答更快）",
    "think_auto": "自动（模型默认）",
    "think_always": "{model} 总是先思考再回答，无法关闭。可使用 /model 选择其他模型。",
    "think_never": "{model} 不进行思考。可使用 /model 选择会思考的模型。",
    "effort_state": "这里的思考强度：{state}。使用 /effort {levels} 或 auto 更改。",
    "effort_auto": "自动（模型默认）",
    "effort_unsupported": "{model} 不支持设置思考强度。可使用 /model 选择其他模型。",
    "reasoning_state": (
        "这里模型的思考过程：{state}。使用 /reasoning show 或 /reasoning hide 更改。"
    ),
    "reasoning_show": "折叠显示在每个回答上方",
    "reasoning_hide": "不显示在回答中",
    "websearch_state": (
        "每个问题都联网搜索：{state}。使用 /websearch on 或 /websearch off 更改。"
        "/search <问题> 只为一个问题搜索。"
    ),
    "websearch_on": "开启",
    "websearch_off": "关闭",
    "websearch_unsupported": (
        "{model} 不能联网搜索。/search <问题> 仍会用可搜索的模型回答单个问题；"
        "可使用 /model 选择其他模型。"
    ),
    "voice_placeholder": "🎤（语音消息）",
    "voice_unavailable": "🎤 本机器人未开启语音识别，请用文字提问。",
    "voice_too_long": "🎤 这段录音太长了：最多 {limit} 秒。请发送更短的录音，或用文字提问。",
    "voice_unreadable": "🎤 无法播放这段音频（文件可能已损坏或不是音频）。请重新录制或用文字提问。",
    "voice_no_speech": "🎤 这段录音里没有听出任何内容，请再试一次。",
    "media_too_large": "📎 文件超过 20 MB，Telegram 不允许机器人下载。请发送更小的文件。",
    "media_unavailable": "📎 无法从 Telegram 下载这个文件，请重新发送。",
    "document_question": "请总结这份文档。",
    "document_unsupported": (
        "📎 我能阅读文本文件（纯文本、Markdown、CSV、JSON、源代码）、PDF 和 Word（.docx）"
        "文档，但读不了这种文件。"
    ),
    "document_unreadable": (
        "📎 在 {name} 中没有找到文字：文件可能已损坏、有密码保护，或是没有文字层的扫描件。"
    ),
    "document_cut": (
        "📄 {name} 太长，无法全部读取：我读了前 {percent}%（{total} 个字符中的 {read} 个）。"
    ),
    "empty_image": "请在 /image 之后描述图片，例如：/image 雪地里的一只红狐狸",
    "pictures_unavailable": "⚠️ 无法生成图片：没有配置图像模型。",
    "image_refused": "⚠️ 图像模型拒绝了这个描述（内容安全策略）。请换一种描述。",
    "image_failed": "⚠️ 这次没能生成图片，请再试一次。",
    "image_bad_request": "⚠️ 图像模型不接受这个描述，请写得短一些。",
    "image_not_sent": "⚠️ 图片已生成，但 Telegram 未能接收。请再试一次。",
    "image_stopped": "⏹ 已停止：没有生成图片。",
    "pictures_one": "{n} 张图片",
    "pictures_other": "{n} 张图片",
    "file_too_large": (
        "⚠️ 这个文件超过 20 MB，这是机器人能从 Telegram 下载的上限。请发送小一些的文件。"
    ),
    "image_describe": "描述这张图片。",
    "images_describe": "描述这些图片。",
    "image_unavailable": "⚠️ 我没能从 Telegram 下载你的图片，请重新发送。",
    "image_unreadable": "⚠️ 我无法读取这张图片，请发送 JPEG 或 PNG 格式的照片。",
    "no_vision_model": "⚠️ 我的模型都不能识别图片，所以在这里无法查看照片。",
}


def text(key: str, language: str | None = None, **values: str) -> str:
    """The message `key` in the user's language, with `{placeholders}` filled in."""
    table = _ZH if language and language.lower().startswith("zh") else _EN
    template = table.get(key, _EN[key])
    return template.format(**values) if values else template


def count(noun: str, n: int, language: str | None = None) -> str:
    """A number with its noun: "1 request", "2 requests" ("1 次请求": no plural in Chinese)."""
    return text(f"{noun}_{'one' if n == 1 else 'other'}", language, n=f"{n:,}")
