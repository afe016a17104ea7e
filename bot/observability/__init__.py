"""What the bot tells its operators: Prometheus metrics, /healthz and /readyz, logs
(JSON or terminal, secrets redacted) and one log line per answer."""
