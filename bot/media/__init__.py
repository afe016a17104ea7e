"""Media sent to the bot: Telegram files (download by file_id) and images for GLM.

``files``: the one way to read a file a user sent (`TelegramFiles`), with Telegram's
size limit and errors a handler turns into a short reply. A Telegram file URL holds the
bot token, so it stays inside that module: never logged, never shown, never sent to GLM.
"""
