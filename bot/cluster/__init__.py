"""Running several replicas of the bot on one Redis (webhook mode).

Polling mode never needs this package. Here: conversation leases (one answer at a time
per conversation across replicas, `leases`), /stop reaching the replica that writes the
answer (`stop_signal`), and replica presence with the split of Telegram's bot-wide
budget (`replicas`). The core meets them through its own ports
(`bot.turns.queue.ConversationLeases`, `bot.stopping.RemoteStops`).
"""
