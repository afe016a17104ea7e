"""Webhook mode: `server` runs the aiohttp endpoint, `intake` checks each request."""
