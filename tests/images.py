"""Real image files of every kind an upload may be, and broken ones, written with Pillow.

`write_good_images(dir)` and `write_broken_images(dir)` return {file name: path}. Each good
image is a red square left of a blue one on a known background, so tests can check
orientation and colour handling on the 32x32 result.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 60)


def picture(width: int = 64, height: int = 48) -> Image.Image:
    """RGB: left half red, right half blue."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = RED
    pixels[:, width // 2:] = BLUE
    return Image.fromarray(pixels, "RGB")


def _save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def _exif_rotated_jpeg(path: Path) -> Path:
    """Stored turned 90 degrees counter-clockwise (red at the bottom); EXIF orientation 6 tells
    a viewer to turn it 90 degrees clockwise, which shows red on the left again."""
    stored = picture(64, 64).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return _save(stored, path, format="JPEG", quality=95, exif=exif.tobytes())


def _animated_gif(path: Path) -> Path:
    first = picture()
    second = Image.new("RGB", first.size, GREEN)
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    return path


def _rgba(path: Path) -> Path:
    """Transparent everywhere but a red left half: composited on white the right half is white."""
    pixels = np.zeros((48, 64, 4), dtype=np.uint8)
    pixels[:, :32] = RED + (255,)
    return _save(Image.fromarray(pixels, "RGBA"), path)


def _palette_transparent(path: Path) -> Path:
    image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    blue_index = image.getpixel((63, 0))
    return _save(image, path, transparency=blue_index)


def _sixteen_bit(path: Path) -> Path:
    """16-bit grayscale, left dark (1000/65535), right bright (60000/65535)."""
    samples = np.full((48, 64), 60000, dtype=np.uint16)
    samples[:, :32] = 1000
    return _save(Image.fromarray(samples), path)  # uint16 -> mode I;16


def write_good_images(directory: Path) -> dict[str, Path]:
    """One file per kind an upload must support."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return {
        "photo.jpg": _save(picture(), d / "photo.jpg", quality=90),
        "plain.png": _save(picture(), d / "plain.png"),
        "large.png": _save(picture(3000, 2000), d / "large.png"),
        "tiny.png": _save(picture(4, 2), d / "tiny.png"),
        "lossless.webp": _save(picture(), d / "lossless.webp", lossless=True),
        "bitmap.bmp": _save(picture(), d / "bitmap.bmp"),
        "animated.gif": _animated_gif(d / "animated.gif"),
        "scan.tiff": _save(picture(), d / "scan.tiff"),
        "alpha.png": _rgba(d / "alpha.png"),
        "palette.png": _save(picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=4), d / "palette.png"),
        "palette_transparent.png": _palette_transparent(d / "palette_transparent.png"),
        "gray.png": _save(picture().convert("L"), d / "gray.png"),
        "cmyk.jpg": _save(picture().convert("CMYK"), d / "cmyk.jpg", quality=95),
        "cmyk.tiff": _save(picture().convert("CMYK"), d / "cmyk.tiff"),
        "deep.png": _sixteen_bit(d / "deep.png"),
        "deep.tiff": _sixteen_bit(d / "deep.tiff"),
        "rotated.jpg": _exif_rotated_jpeg(d / "rotated.jpg"),
    }


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims width x height (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _bytes_of(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def write_broken_images(directory: Path) -> dict[str, Path]:
    """Files that are not usable images, each for a different reason."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "empty.png": b"",
        "truncated.png": _bytes_of(picture(256, 256), format="PNG")[:600],
        "truncated.jpg": _bytes_of(picture(256, 256), format="JPEG")[:700],
        "notes.png": b"these are my holiday notes, not a picture\n",
        "bomb.png": png_header_claiming(30000, 30000),  # 900 MP: over Pillow's own hard limit
        "huge.png": png_header_claiming(9000, 8000),  # 72 MP: under Pillow's limit, over ours
    }
    paths = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths[name] = d / name
    return paths
