"""An uploaded image -> the 32x32 RGB the network sees -> top-k fine and coarse labels.

One code path for the Predict page and `python -m lsc_core predict`:
`prepare_upload(name, bytes)` decodes any image Pillow can open, or says in one line why
it cannot; `predict_prepared(model, label_mode, images)` ranks the labels.

How an image becomes the network's input, and why:
1. Decode the first frame (animated GIF/WebP/APNG/TIFF pages: the first is the picture).
2. Refuse more than MAX_PIXELS before decoding anything (decompression bombs: a small
   file that claims a huge canvas). Pillow's own bomb check is caught as the same error.
3. Apply the EXIF orientation, so a phone photo is upright as its owner sees it.
4. Convert to 8-bit RGB: transparency composited on white (CIFAR objects sit on real
   backgrounds; white is the neutral choice and what a viewer shows), palette, grayscale
   and CMYK converted, 16-bit and 32-bit samples scaled to 0..255 (not clipped, which
   would turn them white).
5. Center-crop to a square, then LANCZOS downscale to 32x32. CIFAR-100 images are square
   and roughly centred on their object; cropping keeps the object's proportions (squashing
   a wide photo would distort it) and LANCZOS averages like the original downsampling
   instead of aliasing. Pillow's `reducing_gap` first shrinks big images by whole-pixel
   box averaging, so a 50-megapixel photo takes milliseconds, not seconds.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import IMAGE_SHAPE, NUM_CLASSES
from .data import COARSE_LABELS, FINE_LABELS

INPUT_SIZE = 32  # the network's input: 32x32 RGB, 0..255
MAX_PIXELS = 50_000_000  # refuse larger images: covers 48-50 MP phone photos, bounds memory (~200 MB RGBA)
DISPLAY_SIZE = 384  # longest side of the "as uploaded" preview
WHITE = (255, 255, 255)
UPLOAD_TYPES = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")


class ImageError(Exception):
    """Why an upload is not a usable image (one line, no traceback)."""


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """A decoded upload: a preview as uploaded and the array the network sees."""

    name: str
    format: str  # as Pillow identified it, e.g. "PNG"
    mode: str  # original pixel mode, e.g. "RGBA", "I;16", "CMYK"
    size: tuple[int, int]  # original width, height (before EXIF rotation)
    frames: int
    preview: "object"  # PIL.Image.Image, RGB, longest side <= DISPLAY_SIZE
    pixels: np.ndarray  # (32, 32, 3) uint8

    def describe(self) -> str:
        frames = f", {self.frames} frames (first used)" if self.frames > 1 else ""
        return f"{self.format} {self.size[0]}x{self.size[1]} {self.mode}{frames}"


@dataclass(frozen=True)
class Upload:
    """One file's outcome: a prepared image, or the reason it is not one."""

    name: str
    image: PreparedImage | None
    error: str | None = None


@dataclass(frozen=True)
class Prediction:
    """Ranked labels of one image under one run; `fine` is empty for a coarse run."""

    fine: tuple[tuple[str, float], ...]
    coarse: tuple[tuple[str, float], ...]
    coarse_derived: bool  # True when the coarse labels come from summing fine probabilities


# -- decoding ---------------------------------------------------------------------------------
def prepare_upload(name: str, data: bytes) -> Upload:
    """Decode one upload; never raises for a bad file (the reason is in `error`)."""
    try:
        return Upload(name, prepare_image(name, data))
    except ImageError as exc:
        return Upload(name, None, str(exc))


def prepare_image(name: str, data: bytes) -> PreparedImage:
    """Bytes of any image Pillow can open -> PreparedImage; ImageError with the reason otherwise."""
    from PIL import Image

    if not data:
        raise ImageError(f"{name}: empty file")
    image = _open(name, data)
    try:
        info = (image.format or "image", image.mode, image.size, getattr(image, "n_frames", 1))
        _load_first_frame(name, image)
        rgb = to_rgb(image)
        pixels = to_network_input(rgb)
        preview = rgb.copy()
        preview.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders of untrusted bytes raise all kinds (struct.error, ...)
        raise ImageError(f"{name}: cannot decode the image ({_reason(exc)})") from None
    finally:
        image.close()
    return PreparedImage(name, *info, preview=preview, pixels=pixels)


def _open(name: str, data: bytes):
    """Image.open (header only), with Pillow's bomb error and our pixel limit as one error.

    Pillow warns above its own limit (89 MP) and raises above twice that. Ours is lower,
    so the size check below refuses everything Pillow would warn about before a pixel is
    decoded; no warnings filter is needed (one would be process-wide, and Streamlit
    sessions are threads).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: too large (over {MAX_PIXELS // 1_000_000} megapixels; "
                         f"refused as a possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (Pillow cannot identify it)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{name}: damaged image header ({_reason(exc)})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageError(f"{name}: too large ({width}x{height} = {width * height / 1e6:.0f} megapixels; "
                         f"the limit is {MAX_PIXELS // 1_000_000})")
    if width < 1 or height < 1:
        image.close()
        raise ImageError(f"{name}: the image has no pixels ({width}x{height})")
    return image


def _load_first_frame(name: str, image) -> None:
    """Decode frame 0 and turn it upright; a truncated file is named as such."""
    from PIL import ImageOps

    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    # JPEG can decode at 1/2, 1/4 or 1/8 scale: a big photo needs no full decode for a preview.
    if image.format == "JPEG":
        image.draft(None, (DISPLAY_SIZE, DISPLAY_SIZE))
    try:
        image.load()
    except OSError as exc:
        if "truncated" in str(exc):
            raise ImageError(f"{name}: truncated file (the image data ends early)") from None
        raise
    ImageOps.exif_transpose(image, in_place=True)


def to_rgb(image):
    """Any Pillow mode -> 8-bit RGB; transparency composited on white; 16/32-bit scaled, not clipped."""
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info or image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_uint8(samples: np.ndarray) -> np.ndarray:
    """16-bit (0..65535), 32-bit int or float samples -> uint8 by scaling their nominal range."""
    values = samples.astype(np.float64)
    if samples.dtype.kind == "f":
        top = 1.0 if values.size and np.nanmax(values) <= 1.0 else 255.0  # [0, 1] floats or 0..255
    else:
        top = 65535.0 if samples.dtype.itemsize == 2 or (values.size and values.max() > 255) else 255.0
    return np.clip(np.rint(np.nan_to_num(values) * (255.0 / top)), 0, 255).astype(np.uint8)


def to_network_input(rgb) -> np.ndarray:
    """RGB image -> (32, 32, 3) uint8: center square crop, then LANCZOS downscale (upscale if small)."""
    from PIL import Image

    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    small = rgb.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.LANCZOS,
                       box=(left, top, left + side, top + side), reducing_gap=3.0)
    return np.asarray(small, dtype=np.uint8).copy()


def network_view(pixels: np.ndarray, scale: int = 6) -> np.ndarray:
    """The 32x32 input enlarged by whole pixels (no smoothing), to show what the network sees."""
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def read_files(paths) -> list[Upload]:
    """Uploads from files on disk; an unreadable path becomes an Upload with its error."""
    uploads = []
    for path in map(str, paths):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            uploads.append(Upload(path, None, f"{path}: cannot read the file ({exc.strerror or exc})"))
            continue
        uploads.append(prepare_upload(path, data))
    return uploads


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


# -- predicting -------------------------------------------------------------------------------
def load_run_model(store, run_id: int, warm: bool = False):
    """(run, keras model) of a run; ValueError (ModelUnavailable) with a clear message if it has none.

    warm=True also runs the model once on blank images of one and of two: Keras builds (traces)
    its prediction function on the first call and once more for a second batch size, about a
    second each, which then happens when the model is loaded instead of after an upload.
    """
    from .model import load_run_model as load

    run = store.get_run(run_id)
    model = load(run, run_id)
    if warm:
        for count in (1, 2):
            model.predict_on_batch(np.zeros((count, *IMAGE_SHAPE), np.float32))
    return run, model


def model_stamp(run: Run) -> float | None:
    """When the run's saved model file last changed (None: no file), so a cache keyed by it
    loads the model again after the run wrote a better one (a resumed or extended run)."""
    path = run.model_path
    try:
        return os.stat(path).st_mtime if path else None
    except OSError:
        return None


def predict_prepared(model, label_mode: str, images: list[PreparedImage], top: int = 5,
                     tta: bool = False) -> list[Prediction]:
    """Top-`top` labels for each prepared image, in one forward pass (two with `tta`: the
    probabilities are averaged with the mirror images', test-time augmentation).

    A fine run gives fine labels and coarse ones derived by summing fine probabilities
    within each superclass; a coarse run gives coarse labels only.
    """
    if not images:
        return []
    from .augment import flip_average
    from .evaluate import coarse_from_fine

    batch = np.stack([image.pixels for image in images]).astype(np.float32)  # 0..255: models rescale
    if tta:
        probs = flip_average(model.predict_on_batch, batch).astype(np.float32)
    else:
        probs = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    if probs.shape[1] != NUM_CLASSES[label_mode]:
        raise ValueError(f"the model has {probs.shape[1]} outputs, not {NUM_CLASSES[label_mode]} ({label_mode})")
    if label_mode == "fine":
        coarse = coarse_from_fine(probs)
        return [Prediction(_ranked(p, FINE_LABELS, top), _ranked(c, COARSE_LABELS, top), True)
                for p, c in zip(probs, coarse)]
    return [Prediction((), _ranked(p, COARSE_LABELS, top), False) for p in probs]


def _ranked(probs: np.ndarray, names: tuple[str, ...], top: int) -> tuple[tuple[str, float], ...]:
    order = np.argsort(-probs, kind="stable")[:max(1, top)]
    return tuple((names[i], float(probs[i])) for i in order)


def classify(model, label_mode: str, uploads: list[Upload], top: int = 5,
             tta: bool = False) -> list[Prediction | None]:
    """A Prediction per upload (None for the ones that are not usable images); `tta` averages
    each image's probabilities with its mirror image's."""
    good = [u.image for u in uploads if u.image is not None]
    ranked = iter(predict_prepared(model, label_mode, good, top, tta))
    return [next(ranked) if u.image is not None else None for u in uploads]


def prediction_frame(prediction: Prediction) -> pd.DataFrame:
    """label, probability, level ('fine' or 'coarse'), rank: for the probability bar chart."""
    rows = [{"level": level, "rank": rank, "label": label, "probability": p}
            for level, ranked in (("fine", prediction.fine), ("coarse", prediction.coarse))
            for rank, (label, p) in enumerate(ranked, start=1)]
    return pd.DataFrame(rows, columns=["level", "rank", "label", "probability"])


def format_prediction(prediction: Prediction) -> list[str]:
    """Lines for the terminal: '  fine    tiger 41.2%  leopard 20.1% ...' and the coarse line."""
    lines = []
    if prediction.fine:
        lines.append("  fine    " + "  ".join(f"{name} {p:.1%}" for name, p in prediction.fine))
    how = " (summed from fine)" if prediction.coarse_derived else ""
    lines.append("  coarse  " + "  ".join(f"{name} {p:.1%}" for name, p in prediction.coarse) + how)
    return lines
