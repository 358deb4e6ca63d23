"""Which coordinate convention (and resize setting) fits a model's answers: `fit_conventions`.

A fine-tune trained in one convention and read in another is the most common complaint in the
Qwen-VL trackers (see EVAL.md). This runs a few labelled samples once per resize setting the family
allows (the processor's own bounds and those of the family's presets), reads every answer in every
convention (the per-sample check of `lav eval`, `records`) and counts the
hits, so the fitting convention is one table away.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..coords import CONVENTIONS
from .records import conventions_correct  # the same check lav eval keeps per sample
from .samples import Dataset

if TYPE_CHECKING:
    from ..analysis import Visualizer


@dataclass(frozen=True)
class Setting:
    """A resize setting: ``(min_pixels, max_pixels)`` and where it comes from (``"processor"``, a preset)."""

    pixels: tuple[int, int]
    origin: str

    @property
    def label(self) -> str:
        return f"{self.pixels[0]}:{self.pixels[1]} ({self.origin})"


@dataclass
class Fit:
    """One setting's answers scored in each convention: ``correct[convention]`` of ``n`` samples."""

    setting: Setting
    n: int
    correct: dict[str, int] = field(default_factory=dict)

    def accuracy(self, convention: str) -> float:
        return self.correct[convention] / self.n if self.n else 0.0


def pixel_settings(viz: Visualizer) -> list[Setting]:
    """The settings to try: the one in use, the processor's own, then every preset's of this family."""
    from ..presets import presets
    from ..stages import pixel_bounds

    current = viz.image_pixels
    saved = viz.image_pixels
    try:
        viz.image_pixels = None
        own = pixel_bounds(viz)
    finally:
        viz.image_pixels = saved
    found: dict[tuple[int, int], str] = {}
    if current is not None:
        found[current] = f"preset {viz.preset.name}" if viz.preset is not None else "given"
    found.setdefault(own, "processor")
    for preset in presets().values():
        if viz.parts.family in preset.families and preset.image_pixels is not None:
            found.setdefault(preset.image_pixels, f"preset {preset.name}")
    return [Setting(p, o) for p, o in found.items()]


@contextmanager
def _resizing(viz: Visualizer, pixels: tuple[int, int]) -> Iterator[None]:
    saved = viz.image_pixels
    viz.image_pixels = pixels
    try:
        yield
    finally:
        viz.image_pixels = saved


def fit_conventions(
    viz: Visualizer,
    dataset: Dataset,
    settings: Sequence[Setting] | None = None,
    *,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    system: str | None = None,
    template: str | None = None,
    say=None,
) -> list[Fit]:
    """Each setting's answers to ``dataset`` scored in every convention (`lav.coords.CONVENTIONS`).

    ``settings``: default `pixel_settings`. The prompt is the model's as `lav.load` set it (its
    preset) unless ``system`` / ``template`` are given. Only the decision focus is recorded (the
    cheapest map): the answers are what is scored.
    """
    from ..options import AnalysisOptions

    samples = list(dataset.samples)
    # The same options for every pixel setting, checked once.
    options = AnalysisOptions(edge_layers=-1, focus_layers=-1, max_new_tokens=max_new_tokens, maps=("focus",))
    fits = []
    for setting in settings if settings is not None else pixel_settings(viz):
        if say is not None:
            say(f"{len(samples)} samples with pixels {setting.label}")
        items = [
            {"image": s.image, "instruction": s.instruction, "system": system, "template": template}
            for s in samples
        ]
        with _resizing(viz, setting.pixels):
            results = viz.analyze_many(items, batch_size=batch_size, options=options)
        fit = Fit(setting, len(samples), dict.fromkeys(CONVENTIONS, 0))
        for sample, res in zip(samples, results, strict=True):
            for convention, right in conventions_correct(sample, res).items():
                fit.correct[convention] += int(right)
        fits.append(fit)
    return fits


def best_fit(fits: Sequence[Fit], default: str) -> tuple[Fit, str]:
    """The setting and convention with the most hits; ties go to the first setting (the one in use)
    and to ``default`` (the convention lav reads the model in), then to `CONVENTIONS` order."""
    order = [default, *(c for c in CONVENTIONS if c != default)]
    ranked = [(fit.correct[c], -i, -j, fit, c) for i, fit in enumerate(fits) for j, c in enumerate(order)]
    top = max(ranked, key=lambda r: r[:3])
    return top[3], top[4]


def table(fits: Sequence[Fit], default: str) -> list[str]:
    """The lines `lav conventions` prints: accuracy per setting and convention, then which fits."""
    width = max(len("pixels (from)"), *(len(f.setting.label) for f in fits))
    head = "pixels (from)".ljust(width) + "".join(f"  {c:>18}" for c in CONVENTIONS)
    lines = [head]
    for fit in fits:
        cells = "".join(f"  {f'{fit.correct[c]}/{fit.n} {fit.accuracy(c):6.1%}':>18}" for c in CONVENTIONS)
        lines.append(fit.setting.label.ljust(width) + cells)
    fit, convention = best_fit(fits, default)
    if fit.correct[convention] == 0:
        lines.append(
            "fits: none; no answer lands on its target in any convention: check the prompt "
            "(--preset, --template, --system) and the answers"
        )
        return lines
    lines.append(
        f"fits: {convention} with pixels {fit.setting.label}: {fit.correct[convention]}/{fit.n} = "
        f"{fit.accuracy(convention):.1%}"
    )
    advice = []
    if convention != default:
        advice.append(f"--coords {convention} (lav reads this model as {default})")
    if fit is not fits[0]:
        advice.append(f"--pixels {fit.setting.pixels[0]}:{fit.setting.pixels[1]}")
    if advice:
        lines.append("to read the model so: " + " ".join(advice))
    return lines
