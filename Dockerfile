# syntax=docker/dockerfile:1
# Builder: resolve and build wheels for the locked dependencies once.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime: slim, non-root, only the installed wheels.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 glmbot
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/* && rm -rf /wheels
USER glmbot
WORKDIR /home/glmbot
# settings.toml is mounted read-only by docker compose; this copy is the fallback.
COPY --chown=glmbot settings.toml ./settings.toml
ENV PYTHONUNBUFFERED=1 BOT_SETTINGS=/home/glmbot/settings.toml
EXPOSE 8080 9464
ENTRYPOINT ["python", "-m", "bot"]
