"""Images for GLM: whatever Telegram delivered, as a JPEG within the vision models' limits.

Zhipu's vision models take JPEG or PNG of at most 5 MB and 6000x6000 px (glm-api.md).
Photos are decoded with Pillow, turned upright (EXIF orientation), flattened onto white
when transparent, scaled so the longer side is at most ``max_side`` and saved as JPEG,
lowering quality and then size until it fits ``max_bytes``. The work is CPU-bound: callers
run it in a thread (`bot.media.source`).
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageUnreadable", "PreparedImage", "prepare_image"]

# Decoded pixels we accept: a 108 MP phone photo, with room. Pillow's own bomb check
# (about 89 MP, a warning) is replaced by this one, which refuses instead.
MAX_PIXELS = 120_000_000
# Qualities tried in turn before the image is made smaller.
_QUALITIES = (85, 75, 60, 45)
_SHRINK = 0.75
_MIN_SIDE = 64


class ImageUnreadable(Exception):
    """Not an image Pillow can decode (or one far too large to decode)."""


@dataclass(frozen=True, slots=True)
class PreparedImage:
    jpeg: bytes
    width: int
    height: int

    def base64(self) -> str:
        """The JPEG as GLM takes it in ``image_url.url``: plain base64, never a URL."""
        return base64.b64encode(self.jpeg).decode("ascii")


def _open(data: bytes, max_side: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
            raise ImageUnreadable(type(exc).__name__) from None
    if image.format == "JPEG":
        # decodes at 1/2, 1/4 or 1/8 scale when that still covers max_side: much faster
        # and smaller than decoding a large photo whole only to scale it down
        image.draft("RGB", (max_side, max_side))
    if image.width * image.height > MAX_PIXELS:
        raise ImageUnreadable(f"{image.width}x{image.height} pixels")
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with transparency laid on white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _encode(image: Image.Image, max_bytes: int) -> tuple[bytes, Image.Image]:
    """The JPEG and the image it holds (smaller than given when quality was not enough)."""
    while True:
        for quality in _QUALITIES:
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= max_bytes:
                return out.getvalue(), image
        if min(image.size) <= _MIN_SIDE:
            raise ImageUnreadable("cannot be made small enough")
        size = (max(1, round(image.width * _SHRINK)), max(1, round(image.height * _SHRINK)))
        image = image.resize(size, Image.Resampling.LANCZOS)


def prepare_image(data: bytes, *, max_side: int, max_bytes: int) -> PreparedImage:
    """``data`` (any format Pillow reads) as an upright RGB JPEG of at most ``max_side``
    pixels a side and ``max_bytes`` bytes; ImageUnreadable when it is not an image."""
    image = _open(data, max_side)
    try:
        image = ImageOps.exif_transpose(image)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        image = _flatten(image)
        jpeg, image = _encode(image, max_bytes)
    except (OSError, ValueError, SyntaxError) as exc:
        # truncated or corrupt data surfaces only when the pixels are read
        raise ImageUnreadable(type(exc).__name__) from None
    return PreparedImage(jpeg, image.width, image.height)
