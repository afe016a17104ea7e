"""Builders the composition root (`bot.app`) calls: production operations (metrics,
readiness, leases, after-answer hooks) and the parts that keep the bot trustworthy under
failure (breaker, owner alerts, dedup, journal), and the media services (file downloads,
images for GLM, albums)."""
