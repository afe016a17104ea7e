"""Photo questions (issue 13): what a 1280x960 photo costs the bot, and its memory under load.

End to end, the same private questions are asked as text and as captions of the photo
(each photo a file of its own, so no answer reuses another's download); the difference
of the two runs is what the photo adds: Telegram download, re-encode, base64, the larger
GLM request. In process, the re-encode (`bot.media.images.prepare_image`) and the base64
step are timed apart. A burst of photo questions at once gives the peak RSS.
"""

from __future__ import annotations

import io
import time
from typing import Any

from bench.analysis import percentile
from bench.load import run_load
from bench.procs import Services
from bench.stack import GLMProfile, StackConfig, private_chats

# Warm-up chats get ids far from the measured ones (as in bench.scenarios).
_WARMUP_IDS = 100_000
PHOTO_SIZE = (1280, 960)


def sample_photo(size: tuple[int, int] = PHOTO_SIZE) -> bytes:
    """A photo-like JPEG (gradients and grain, quality 87, about 230 KB, as Telegram
    stores a photo of that size), the same bytes every run."""
    from PIL import Image

    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    grain = Image.effect_noise(size, 24)
    blue = Image.blend(red.transpose(Image.Transpose.ROTATE_180), grain, 0.5)
    image = Image.merge("RGB", (red, green, blue))
    image = Image.blend(image, Image.merge("RGB", (grain, grain, grain)), 0.15)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=87)
    return out.getvalue()


def pipeline_cost(photo: bytes, iterations: int) -> dict[str, Any]:
    """CPU of the bot's image steps on ``photo``, in this process, with the bot's settings."""
    from bot.config.media import MediaSettings
    from bot.media.images import prepare_image

    media = MediaSettings()
    encode_ms: list[float] = []
    base64_ms: list[float] = []
    prepared = None
    for _ in range(iterations):
        started = time.process_time()
        prepared = prepare_image(
            photo, max_side=media.image_max_side, max_bytes=media.image_max_bytes
        )
        middle = time.process_time()
        encoded = prepared.base64()
        ended = time.process_time()
        encode_ms.append((middle - started) * 1000)
        base64_ms.append((ended - middle) * 1000)
    assert prepared is not None
    return {
        "photo_bytes": len(photo),
        "size": list(PHOTO_SIZE),
        "sent_size": [prepared.width, prepared.height],
        "sent_jpeg_bytes": len(prepared.jpeg),
        "sent_base64_chars": len(encoded),
        "reencode_ms_p50": _round(percentile(encode_ms, 50)),
        "reencode_ms_p99": _round(percentile(encode_ms, 99)),
        "base64_ms_p50": _round(percentile(base64_ms, 50)),
        "iterations": iterations,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


Redis = tuple[str, str, int]


async def measure(
    services: Services,
    redis: Redis,
    glm: GLMProfile,
    shape: tuple[int, float, int, bool],
    timeout: float,
    iterations: int,
) -> dict[str, Any]:
    """``shape``: questions one by one (0: none), seconds apart, questions at once, and
    whether the text runs to compare with are made too."""
    n, stagger, burst, compare = shape
    photo = sample_photo()
    runs: list[dict[str, Any]] = []
    kinds = {"text": None, "photo": photo} if compare else {"photo": photo}
    warmup = private_chats(3, start=_WARMUP_IDS)
    for how in ("one by one", "at once"):
        for kind, data in kinds.items():
            chats = private_chats(n if how == "one by one" else burst)
            if not chats:
                continue
            gap = stagger if how == "one by one" else 0.0
            print(f"  photos: {len(chats)} {kind} questions {how}", flush=True)
            figures, _ = await run_load(
                services,
                redis,
                chats,
                StackConfig(glm=glm, photo=data),
                timeout=timeout + len(chats) * max(gap, 0.1),
                stagger=gap,
                warmup=warmup,
            )
            figures.update(kind=kind, how=how, stagger_seconds=gap)
            runs.append(figures)
    return {"pipeline": pipeline_cost(photo, iterations), "glm": glm.__dict__, "runs": runs}
