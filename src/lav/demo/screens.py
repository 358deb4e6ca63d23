"""Synthetic screenshots for the demo model, deterministic from a seed.

A window (title bar, a side panel of icons, a toolbar of labelled buttons) whose content area holds
coloured shapes (circle, square, triangle). One shape is the target of an instruction such as
"Click the red circle"; its box is known in pixels, so every screen is its own answer key.

Widgets sit on a layout grid whose cells are the model's merged image tokens (32 px for Qwen3-VL:
patch 16, merge 2), with a few pixels of jitter: GUIs are laid out on grids too, and it keeps the
tiny demo model's job (find the cell, then say where it is) learnable on a CPU in minutes.

Two tasks share the screens:
- ``base``: the target's colour is one of `BASE_COLOURS` (what the base model is trained on);
- ``adapter``: the target's colour is one of `NEW_COLOURS`, words the base model never reads (those
  colours do appear on its screens, as distractors); at least two other shapes of the target's
  kind, in other colours, are on the screen, so picking by shape alone is not enough.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

#: Screen size (width, height) in pixels: 16 x 12 patches of 16 px, 8 x 6 merged image tokens.
WIDTH, HEIGHT = 256, 192
#: One layout cell = one merged image token (patch 16 x merge 2).
CELL = 32
COLS, ROWS = WIDTH // CELL, HEIGHT // CELL
#: The window's title bar: the first widget box of every screen, as wide as the screen.
TITLE_BAR = (0, 0, WIDTH, 14)

BASE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
}
NEW_COLOURS: dict[str, tuple[int, int, int]] = {
    "purple": (140, 55, 185),
    "orange": (245, 135, 20),
}
COLOURS = {**BASE_COLOURS, **NEW_COLOURS}
SHAPES = ("circle", "square", "triangle")
TASKS = ("base", "adapter")

_LABELS = ("Save", "Open", "Edit", "Help", "Close", "Copy", "Paste", "Undo", "Find", "Print")
_TITLES = ("Untitled - Editor", "Settings", "Files", "Preview", "Dashboard", "Inbox", "Report.txt")
_JITTER = 4
#: Content cells: below the title/toolbar row, right of the side panel.
_CONTENT = [(c, r) for r in range(1, ROWS) for c in range(1, COLS)]

# Seeds below this are for training; held-out screens (evaluation, tests, the bundled screenshot)
# use seeds from `HELD_OUT_SEED` up, so the two sets are disjoint by construction.
HELD_OUT_SEED = 10_000_000


@dataclass(frozen=True)
class Screen:
    """One synthetic screenshot and its answer key.

    ``box`` and ``widget_boxes`` are (x0, y0, x1, y1) in image pixels, x1/y1 exclusive.
    ``answer`` is the target's centre on Qwen3-VL's 0-1000 relative scale, spelled ``"(x, y)"``.
    """

    image: Image.Image
    instruction: str
    box: tuple[int, int, int, int]
    colour: str
    shape: str
    task: str
    seed: int
    widget_boxes: tuple[tuple[int, int, int, int], ...]
    #: Every shape on the screen, target first: (colour, shape, box).
    shapes: tuple[tuple[str, str, tuple[int, int, int, int]], ...] = ()

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def answer(self) -> str:
        cx, cy = self.centre
        return f"({round(cx / WIDTH * 1000)}, {round(cy / HEIGHT * 1000)})"

    def contains(self, x: float, y: float) -> bool:
        """Is the point (image pixels) inside the target's box?"""
        x0, y0, x1, y1 = self.box
        return x0 <= x < x1 and y0 <= y < y1


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


def _vary(rgb: tuple[int, int, int], rng: random.Random, amount: int = 14) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, v + rng.randint(-amount, amount))) for v in rgb)
    return (r, g, b)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1 - 1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {SHAPES}")


def _shape_box(cell: tuple[int, int], rng: random.Random) -> tuple[int, int, int, int]:
    c, r = cell
    size = rng.randint(20, 26)
    cx = c * CELL + CELL // 2 + rng.randint(-_JITTER, _JITTER)
    cy = r * CELL + CELL // 2 + rng.randint(-_JITTER, _JITTER)
    x0, y0 = cx - size // 2, cy - size // 2
    return (x0, y0, x0 + size, y0 + size)


def _chrome(draw: ImageDraw.ImageDraw, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """Title bar, toolbar buttons and side-panel icons; returns their boxes."""
    boxes: list[tuple[int, int, int, int]] = []
    shade = rng.randint(40, 90)
    draw.rectangle((0, 0, TITLE_BAR[2] - 1, TITLE_BAR[3] - 1), fill=(shade, shade, shade + 15))
    draw.text((6, 1), rng.choice(_TITLES), fill=(235, 235, 235), font=_font(10))
    for i in range(3):  # window controls, grey so they never look like a target
        x = WIDTH - 12 - 12 * i
        draw.rectangle((x, 3, x + 7, 10), fill=(170, 170, 170))
    boxes.append(TITLE_BAR)
    # Toolbar: labelled buttons in the first row, right of the side panel.
    x = CELL + 2
    for label in rng.sample(_LABELS, rng.randint(2, 4)):
        w = 8 + 6 * len(label)
        if x + w > WIDTH - 4:
            break
        box = (x, 16, x + w, 30)
        draw.rounded_rectangle(
            (box[0], box[1], box[2] - 1, box[3] - 1), radius=3, fill=(245, 245, 245), outline=(120, 120, 130)
        )
        draw.text((x + 4, 17), label, fill=(30, 30, 30), font=_font(10))
        boxes.append(box)
        x += w + rng.randint(3, 10)
    # Side panel with monochrome icons.
    draw.rectangle((0, 14, CELL - 3, HEIGHT - 1), fill=(222, 224, 228))
    for r in range(1, ROWS):
        if rng.random() < 0.7:
            y = r * CELL + 8
            grey = rng.randint(80, 140)
            kind = rng.randrange(3)
            if kind == 0:  # folder
                draw.rectangle((8, y + 4, 22, y + 15), fill=(grey, grey, grey))
                draw.rectangle((8, y + 2, 14, y + 5), fill=(grey, grey, grey))
            elif kind == 1:  # document with lines
                draw.rectangle((9, y, 21, y + 16), outline=(grey, grey, grey))
                for k in range(3):
                    draw.line((11, y + 4 + 4 * k, 19, y + 4 + 4 * k), fill=(grey, grey, grey))
            else:  # gear-ish
                draw.ellipse((9, y + 2, 21, y + 14), outline=(grey, grey, grey), width=3)
            boxes.append((8, y, 23, y + 17))
    return boxes


def make_screen(seed: int, task: str = "base") -> Screen:
    """The screenshot of ``seed`` for ``task`` (``"base"`` or ``"adapter"``); same seed, same screen."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
    rng = random.Random(f"lav-demo/{task}/{seed}")
    bg = _vary((238, 240, 244), rng, 8)
    image = Image.new("RGB", (WIDTH, HEIGHT), bg)
    draw = ImageDraw.Draw(image)
    boxes = _chrome(draw, rng)

    target_colour = rng.choice(list(BASE_COLOURS if task == "base" else NEW_COLOURS))
    target_shape = rng.choice(SHAPES)
    n_shapes = rng.randint(3, 7)
    kinds: list[tuple[str, str]] = [(target_colour, target_shape)]
    if task == "adapter":
        # Same kind, other colours: the base model cannot get it by shape alone.
        others = [c for c in COLOURS if c != target_colour]
        kinds += [(c, target_shape) for c in rng.sample(others, 2)]
    while len(kinds) < n_shapes:
        kind = (rng.choice(list(COLOURS)), rng.choice(SHAPES))
        if kind != (target_colour, target_shape):
            kinds.append(kind)
    cells = rng.sample(_CONTENT, len(kinds) + 1)
    # A text label in one spare cell, as clutter the model must ignore.
    lc, lr = cells[-1]
    draw.text((lc * CELL + 2, lr * CELL + 10), rng.choice(_LABELS), fill=(70, 70, 70), font=_font(10))
    boxes.append((lc * CELL + 2, lr * CELL + 10, lc * CELL + 30, lr * CELL + 22))
    drawn = []
    for (colour, shape), cell in zip(kinds, cells[:-1], strict=True):
        box = _shape_box(cell, rng)
        _draw_shape(draw, shape, box, _vary(COLOURS[colour], rng))
        boxes.append(box)
        drawn.append((colour, shape, box))
    target_box = drawn[0][2]
    return Screen(
        image=image,
        instruction=f"Click the {target_colour} {target_shape}",
        box=target_box,
        colour=target_colour,
        shape=target_shape,
        task=task,
        seed=seed,
        widget_boxes=tuple(boxes),
        shapes=tuple(drawn),
    )


def held_out(n: int, task: str = "base", start: int = 0) -> list[Screen]:
    """``n`` screens that training never sees (seeds from `HELD_OUT_SEED` + ``start``)."""
    return [make_screen(HELD_OUT_SEED + start + i, task) for i in range(n)]
