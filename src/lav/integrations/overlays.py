"""The overlays `LavCallback` logs to TensorBoard and W&B, labelled so that one picture says what it is.

A dashboard shows an image alone, under its tag, with a step slider: nothing around it says which
panel is the adapter and which the base model, nor which decoder layers the focus averages. Each
logged picture (the thumbnail `lav.eval.report.write_thumbnail` draws: adapter | base) gets a band
above the panels naming each, and a band below naming the layers, the step and the marks.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from ..eval.report import THUMB_WIDTH

#: Gap between two panels of a thumbnail (`write_thumbnail`).
_GAP = 4
_LINE = 14
_TEXT = (27, 31, 36)


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def layer_list(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 7]`` -> ``"0-3, 7"``."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and runs[-1][1] == layer - 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def panel_labels(res, step: int, adapter: bool) -> list[str]:
    """One label per panel of ``res``'s thumbnail, left to right."""
    first = f"{'adapter' if adapter else 'model'} at step {step}"
    return [first, "base model (adapter off)"] if res.base is not None else [first]


def footer(res) -> list[str]:
    """What the thumbnail's maps and marks are."""
    if "focus" in res.maps:
        layers = res.focus_layers
        what = "decoder layer" if len(layers) == 1 else "mean of decoder layers"
        lines = [f"decision focus: {what} {layer_list(layers)}"]
    else:
        lines = ["no decision focus recorded"]
    marks = "blue box: target"
    if res.base is not None:
        marks += "; rings: the other panel's click (orange: base, green: adapter)"
    return [*lines, marks]


def labelled(thumb: Image.Image, res, step: int, adapter: bool) -> Image.Image:
    """``thumb`` with its panels named above and its maps and marks named below."""
    labels = panel_labels(res, step, adapter)
    below = footer(res)
    font = _font()
    top = _LINE + 4
    out = Image.new("RGB", (thumb.width, top + thumb.height + _LINE * len(below) + 4), (255, 255, 255))
    out.paste(thumb, (0, top))
    draw = ImageDraw.Draw(out)
    for i, label in enumerate(labels):
        draw.text((i * (THUMB_WIDTH + _GAP) + 2, 2), label, fill=_TEXT, font=font)
    for i, line in enumerate(below):
        draw.text((2, top + thumb.height + 2 + i * _LINE), line, fill=_TEXT, font=font)
    return out
