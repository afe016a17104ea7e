"""Images for GLM (Pillow), the vision model lookup, and album collection."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from bot.media.albums import MAX_ALBUM_IMAGES, AlbumCollector
from bot.media.images import ImageUnreadable, prepare_image
from bot.messages import ImagePart, TextPart
from bot.models import Capabilities, ModelCatalog, ModelSpec


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def test_large_photo_is_scaled_within_the_longest_side() -> None:
    data = encoded(Image.new("RGB", (4000, 1000), "red"), "JPEG")
    prepared = prepare_image(data, max_side=2048, max_bytes=1_000_000)
    assert (prepared.width, prepared.height) == (2048, 512)
    assert decoded(prepared.jpeg).size == (2048, 512)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the stored 400x200 is shown as 200x400
    data = encoded(Image.new("RGB", (400, 200), "blue"), "JPEG", exif=exif)
    prepared = prepare_image(data, max_side=2048, max_bytes=1_000_000)
    assert decoded(prepared.jpeg).size == (200, 400)


def test_transparency_is_laid_on_white() -> None:
    data = encoded(Image.new("RGBA", (50, 50), (0, 0, 0, 0)), "PNG")
    image = decoded(prepare_image(data, max_side=2048, max_bytes=1_000_000).jpeg)
    assert image.mode == "RGB"
    assert min(image.getpixel((25, 25))) > 240


def test_quality_then_size_give_way_to_the_byte_limit() -> None:
    noise = Image.effect_noise((1500, 1500), 100).convert("RGB")
    data = encoded(noise, "PNG")
    prepared = prepare_image(data, max_side=2048, max_bytes=200_000)
    assert len(prepared.jpeg) <= 200_000
    assert decoded(prepared.jpeg).size == (prepared.width, prepared.height)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", encoded(Image.new("RGB", (300, 300)), "PNG")[:200]],
)
def test_what_is_not_an_image_is_unreadable(data: bytes) -> None:
    with pytest.raises(ImageUnreadable):
        prepare_image(data, max_side=2048, max_bytes=1_000_000)


def test_a_decompression_bomb_is_refused_without_decoding() -> None:
    data = encoded(Image.new("1", (12_000, 12_000)), "PNG")  # 144 MP in a small file
    with pytest.raises(ImageUnreadable, match="12000x12000"):
        prepare_image(data, max_side=2048, max_bytes=1_000_000)


def test_a_turn_with_images_goes_to_the_vision_model() -> None:
    text = ModelSpec("text", 8000, 1000)
    sees = Capabilities(images_in=True)
    vision = ModelSpec("vision", 8000, 1000, kind="vision", capabilities=sees)
    searching = ModelSpec("search", 8000, 1000, capabilities=Capabilities(web_search=True))
    catalog = ModelCatalog([text, searching, vision], default="text")
    assert catalog.vision_model() is vision
    assert catalog.for_turn(None, images=True) is vision
    assert catalog.for_turn(None, search=True, images=True) is vision, "seeing comes first"
    assert catalog.for_turn("vision") is vision
    assert catalog.for_turn(None) is text
    blind = ModelCatalog([text], default="text")
    assert blind.vision_model() is None
    assert blind.for_turn(None, images=True) is text


async def test_an_album_collects_until_its_window_passes() -> None:
    albums = AlbumCollector(window=0.05)
    album = albums.album(1, "g", "describe these")
    album.add(12, ImagePart("second"), None)
    album.add(11, ImagePart("first"), "compare")
    assert albums.album(1, "g", "") is album
    parts = await asyncio.wait_for(album.collected(), 5)
    assert parts == (ImagePart("first"), ImagePart("second"), TextPart("compare"))
    assert len(albums) == 0
    assert albums.album(1, "g", "") is not album, "a finished album is not joined"


async def test_an_album_keeps_at_most_ten_images_and_closes_at_shutdown() -> None:
    albums = AlbumCollector(window=3600)
    album = albums.album(1, "g", "describe these")
    for n in range(MAX_ALBUM_IMAGES + 3):
        album.add(n, ImagePart(f"p{n}"), None)
    await albums.close()
    parts = await asyncio.wait_for(album.collected(), 5)
    assert len(parts) == MAX_ALBUM_IMAGES + 1
    assert parts[-1] == TextPart("describe these")
    assert len(albums) == 0


async def test_after_shutdown_an_album_does_not_wait() -> None:
    albums = AlbumCollector(window=3600)
    await albums.close()
    album = albums.album(1, "late", "describe these")
    album.add(1, ImagePart("p"), None)
    assert await asyncio.wait_for(album.collected(), 5) == (
        ImagePart("p"),
        TextPart("describe these"),
    )
    album.finish()
