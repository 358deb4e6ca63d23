"""Map layers, the click crosshair and the composite overlay, as PIL images.

Everything here takes plain data: maps are numpy arrays on the model's patch grid, images are PIL
images, sizes are ``(width, height)`` in original-image pixels. The colours are the product's:

- edge map (cyan): ``rgba(0, 200 + 55*v, 255, v*alpha)``, alpha 0.3 by default
- decision focus (red/yellow): ``rgba(255, 180*v, 0, v*alpha)``, alpha 0.35 by default
- difference (adapter minus base, in [-1, 1]): red for positive, blue for negative, ``|d|*alpha``,
  alpha 0.4 by default
- click: a green crosshair with a ``#1e3a5f`` ring and centre dot.

Channels are quantised to 8 bits by rounding half up (``floor(x + 0.5)``), so ``v = 0.5`` gives
``G = 228`` on the edge map, not banker's rounding's 227 or 228 depending on the value.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import InputError

__all__ = [
    "CLICK_GREEN",
    "CLICK_MARKER",
    "DIFF_NEGATIVE",
    "DIFF_POSITIVE",
    "RenderError",
    "diff_layer",
    "draw_click",
    "edge_layer",
    "focus_layer",
    "overlay",
    "to_png",
]

CLICK_GREEN: tuple[int, int, int] = (0, 220, 0)
CLICK_MARKER: tuple[int, int, int] = (0x1E, 0x3A, 0x5F)
DIFF_POSITIVE: tuple[int, int, int] = (230, 40, 40)
DIFF_NEGATIVE: tuple[int, int, int] = (40, 100, 230)

# Opacities at v = 1, low enough that a target under the map keeps its own colour: at the seed's
# 0.6 the demo's purple target under its focus peak read as orange, another colour of the demo
# (tests/render/test_views.py checks every shape of the demo screenshot under the real maps).
EDGE_ALPHA = 0.3
FOCUS_ALPHA = 0.35
DIFF_ALPHA = 0.4

# Map values that come out of a float32 min-max can overshoot [0, 1] by a few ulps; anything
# beyond this is a caller bug (an un-normalised map) and must not be silently clipped.
_RANGE_SLACK = 1e-5


class RenderError(InputError, ValueError):
    """A map, size or point that cannot be drawn (NaN, wrong shape, out of range).

    A `ValueError` for callers that expect one, and a `lav.errors.InputError` so the CLI reports it
    as bad input rather than a crash.
    """


def _q8(x: np.ndarray) -> np.ndarray:
    """Float channel values in [0, 255] -> uint8, rounding half up."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2:
        raise RenderError(f"size must be (width, height), got {size!r}")
    w, h = (int(s) for s in size)
    if w <= 0 or h <= 0 or w != size[0] or h != size[1]:
        raise RenderError(f"size must be two positive integers (width, height), got {size!r}")
    return w, h


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise RenderError(f"alpha must be in [0, 1], got {alpha}")
    return alpha


def _check_map(values: np.ndarray, name: str, low: float) -> np.ndarray:
    """Validate a (grid_h, grid_w) map with values in [low, 1]; return it as float64 clipped."""
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise RenderError(f"{name} map must be a non-empty 2-D (grid_h, grid_w) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise RenderError(f"{name} map must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise RenderError(
            f"{name} map holds NaN or inf at {int((~np.isfinite(arr)).sum())} patches; "
            "the map was not normalised (a constant map must become zeros, not NaN)"
        )
    lo, hi = float(arr.min()), float(arr.max())
    if lo < low - _RANGE_SLACK or hi > 1.0 + _RANGE_SLACK:
        raise RenderError(
            f"{name} map values must lie in [{low:g}, 1], got [{lo:g}, {hi:g}]; normalise it first"
        )
    return np.clip(arr, low, 1.0)


def _upsample(rgba: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """(grid_h, grid_w, 4) uint8 -> RGBA image of ``size`` by nearest neighbour over pixel centres.

    Patch column j covers original x in [j*W/grid_w, (j+1)*W/grid_w) because the processor resizes
    the whole image onto the grid; pixel x belongs to the patch that holds its centre x + 0.5.
    Integer arithmetic keeps the block edges exact for any W, grid_w (no float drift on 4K).
    """
    w, h = size
    gh, gw = rgba.shape[:2]
    cols = ((2 * np.arange(w) + 1) * gw) // (2 * w)
    rows = ((2 * np.arange(h) + 1) * gh) // (2 * h)
    return Image.fromarray(np.ascontiguousarray(rgba[rows[:, None], cols[None, :]]), "RGBA")


def edge_layer(edge: np.ndarray, size: tuple[int, int], alpha: float = EDGE_ALPHA) -> Image.Image:
    """Cyan RGBA layer for the edge map.

    Args:
        edge: (grid_h, grid_w) float in [0, 1], the vision encoder's received attention.
        size: (width, height) of the original image in pixels; the grid covers all of it.
        alpha: opacity at v = 1.

    Returns:
        RGBA image of ``size``; each patch is one solid block ``rgba(0, 200 + 55*v, 255, v*alpha)``.
    """
    v = _check_map(edge, "edge", 0.0)
    size, alpha = _check_size(size), _check_alpha(alpha)
    rgba = np.empty(v.shape + (4,), np.uint8)
    rgba[..., 0] = 0
    rgba[..., 1] = _q8(200.0 + 55.0 * v)
    rgba[..., 2] = 255
    rgba[..., 3] = _q8(255.0 * v * alpha)
    return _upsample(rgba, size)


def focus_layer(focus: np.ndarray, size: tuple[int, int], alpha: float = FOCUS_ALPHA) -> Image.Image:
    """Red-to-yellow RGBA layer for the decision focus.

    Args:
        focus: (grid_h/m, grid_w/m) float in [0, 1] on the merged grid (or any grid covering the image).
        size: (width, height) of the original image in pixels.
        alpha: opacity at v = 1.

    Returns:
        RGBA image of ``size``; each cell is ``rgba(255, 180*v, 0, v*alpha)``.
    """
    v = _check_map(focus, "focus", 0.0)
    size, alpha = _check_size(size), _check_alpha(alpha)
    rgba = np.empty(v.shape + (4,), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = _q8(180.0 * v)
    rgba[..., 2] = 0
    rgba[..., 3] = _q8(255.0 * v * alpha)
    return _upsample(rgba, size)


def diff_layer(diff: np.ndarray, size: tuple[int, int], alpha: float = DIFF_ALPHA) -> Image.Image:
    """Diverging RGBA layer for a difference map (adapter minus base).

    Args:
        diff: (grid_h, grid_w) float in [-1, 1].
        size: (width, height) of the original image in pixels.
        alpha: opacity at |d| = 1.

    Returns:
        RGBA image of ``size``: `DIFF_POSITIVE` (red) where d > 0, `DIFF_NEGATIVE` (blue) where d < 0,
        opacity ``|d|*alpha``, fully transparent where d == 0.
    """
    d = _check_map(diff, "difference", -1.0)
    size, alpha = _check_size(size), _check_alpha(alpha)
    rgba = np.zeros(d.shape + (4,), np.uint8)
    rgba[d > 0, :3] = DIFF_POSITIVE
    rgba[d < 0, :3] = DIFF_NEGATIVE
    rgba[..., 3] = _q8(255.0 * np.abs(d) * alpha)
    return _upsample(rgba, size)


def _crosshair_sizes(width: int, height: int) -> dict[str, int]:
    """Pixel sizes of the crosshair parts, scaled to the image's long side.

    1.2% of the long side keeps the ring about as large on screen for a 4K screenshot shown at a
    third of its size as for a small one shown at full size; the floors keep it legible at 100 px.
    """
    ring = max(5, round(0.012 * max(width, height)))
    return {
        "ring": ring,  # outer radius of the ring
        "ring_width": max(1, round(ring / 5)),
        "dot": max(1, round(ring / 4)),  # radius of the centre dot
        "arm": 3 * ring,  # arms reach this far from the centre
        "half": round(ring / 10),  # arm half-thickness; 0 gives 1 px lines centred on the click
    }


def _click_pixel(width: int, height: int, x: float, y: float) -> tuple[int, int, bool]:
    """The pixel the crosshair is centred on, clipped into the image, and whether the click is inside.

    A click on the far edge (x == width, e.g. 1000 on the 0-1000 scale) is inside the image.
    """
    x, y = float(x), float(y)
    if not (np.isfinite(x) and np.isfinite(y)):
        raise RenderError(f"click ({x}, {y}) is not a finite point; pass click=None when there is none")
    inside = 0.0 <= x <= width and 0.0 <= y <= height
    cx = min(max(round(x), 0), width - 1)
    cy = min(max(round(y), 0), height - 1)
    return cx, cy, inside


def draw_click(image: Image.Image, x: float, y: float, dashed: bool = False) -> Image.Image:
    """A copy of ``image`` with the click crosshair on it.

    Args:
        image: the screenshot; RGB or RGBA are kept, other modes become RGB.
        x, y: the click in original-image pixels.

    Returns:
        The copy. The centre pixel ``(round(x), round(y))`` (Python's ``round``) is `CLICK_MARKER`;
        green arms of `CLICK_GREEN` point at it from four sides and a `CLICK_MARKER` ring surrounds
        it, all scaled with the image. A click outside the image is drawn at the nearest border
        pixel as a hollow marker: ring and arms, no centre dot. ``dashed`` breaks the arms and the
        ring into dashes (the base model's click beside the adapter's solid one).
    """
    out = image.copy() if image.mode in ("RGB", "RGBA") else image.convert("RGB")
    w, h = out.size
    cx, cy, inside = _click_pixel(w, h, x, y)
    s = _crosshair_sizes(w, h)
    reach = s["arm"]
    # Work on the crosshair's bounding box only: a full-frame mask on a 4K image costs 8 M pixels.
    x0, x1 = max(cx - reach, 0), min(cx + reach + 1, w)
    y0, y1 = max(cy - reach, 0), min(cy + reach + 1, h)
    dy, dx = np.mgrid[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
    d2 = dx * dx + dy * dy
    r_out, r_in = s["ring"], s["ring"] - s["ring_width"]
    gap = s["dot"] + 1 + max(1, s["ring"] // 4)
    arms = ((np.abs(dy) <= s["half"]) & (np.abs(dx) >= gap)) | (
        (np.abs(dx) <= s["half"]) & (np.abs(dy) >= gap)
    )
    arms &= np.maximum(np.abs(dx), np.abs(dy)) <= reach
    # Integer radii compared on squared distances keep the marker symmetric about the centre pixel.
    ring = (d2 <= r_out * r_out) & (d2 > r_in * r_in)
    if dashed:
        # Dashes along the arms (by distance from the centre) and around the ring (by angle).
        step = max(2, s["ring"] // 2)
        arms &= (np.maximum(np.abs(dx), np.abs(dy)) // step) % 2 == 0
        ring &= (np.floor(np.arctan2(dy, dx) / (np.pi / 6)).astype(int) % 2) == 0
    marker = ring | (d2 <= s["dot"] * s["dot"]) if inside else ring

    box = np.array(out.crop((x0, y0, x1, y1)))
    opaque = (255,) if out.mode == "RGBA" else ()
    box[arms & ~marker] = CLICK_GREEN + opaque
    box[marker] = CLICK_MARKER + opaque
    out.paste(Image.fromarray(box, out.mode), (x0, y0))
    return out


def overlay(
    image: Image.Image,
    edge: np.ndarray | None = None,
    focus: np.ndarray | None = None,
    click: tuple[float, float] | None = None,
    alpha: float | None = None,
    *,
    diff: np.ndarray | None = None,
) -> Image.Image:
    """The screenshot with whichever layers are given, as one RGB image.

    Args:
        image: the original screenshot (any PIL mode; transparency is flattened onto white).
        edge: (grid_h, grid_w) in [0, 1] or None.
        focus: (grid_h/m, grid_w/m) in [0, 1] or None.
        click: (x, y) in original-image pixels, or None.
        alpha: opacity at v = 1 for every map; None keeps each layer's default.
        diff: (grid_h, grid_w) in [-1, 1] or None, a difference map drawn under the others.

    Returns:
        RGB image of the screenshot's size: diff, then edge, then focus, then the crosshair on top.
    """
    base = _flatten(image)
    layers = [
        (diff, diff_layer, DIFF_ALPHA),
        (edge, edge_layer, EDGE_ALPHA),
        (focus, focus_layer, FOCUS_ALPHA),
    ]
    for values, make, default in layers:
        if values is not None:
            base = Image.alpha_composite(base, make(values, base.size, default if alpha is None else alpha))
    out = base.convert("RGB")
    if click is not None:
        if len(click) != 2:
            raise RenderError(f"click must be (x, y) in original-image pixels, got {click!r}")
        out = draw_click(out, click[0], click[1])
    return out


def _flatten(image: Image.Image) -> Image.Image:
    """Opaque RGBA copy of ``image``; a transparent screenshot is shown on white, as a browser would."""
    if image.mode == "RGB":
        return image.convert("RGBA")
    rgba = image.convert("RGBA")
    if rgba.getextrema()[3][0] == 255:
        return rgba
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


def scaled(image: Image.Image, width: int) -> Image.Image:
    """The screenshot as `overlay` shows it (transparency on white), scaled to ``width`` pixels wide
    with its aspect ratio: what a small picture draws its layers on, at its own size."""
    flat = image if image.mode == "RGB" else _flatten(image).convert("RGB")
    height = max(1, round(image.height * width / image.width))
    return flat.resize((width, height), Image.Resampling.BILINEAR)


def to_png(image: Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes of ``image`` (any mode PNG can hold; RGBA layers keep their alpha); zlib's
    ``compress_level`` (1: fastest; 6: Pillow's default)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
