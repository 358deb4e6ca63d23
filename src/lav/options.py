"""`AnalysisOptions`: the options of one analysis call, checked once, where they are built.

Every shell (`lav run`, `lav eval`, `lav serve`, the evolve runner, the training callback) builds one
`AnalysisOptions` from its own flags or keywords and hands it to `Visualizer.analyze_many` as one
object; `Visualizer.analyze(..., edge_layers=..., ...)` builds one from its keywords. What needs the
model (a layer index past its depth, a method that does not apply to it, a head it lacks) is
checked where the model is at hand. Torch-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checks import check_options
from .coords import AnswerRules
from .errors import InputError

if TYPE_CHECKING:
    from .presets import Preset

LayerArg = int | Sequence[int] | str | None
#: Longest answer generated when neither the call nor a preset says (a point or box is a few dozen tokens).
DEFAULT_MAX_NEW_TOKENS = 64

#: Options a map method may declare it needs (`lav.methods.MapMethod.requires`): each one's name in
#: words and what it does (for the errors of a shell that does not take it, or of one given unused).
METHOD_INPUTS = {"focus_heads": ("focus heads", "selects heads")}


def flag(option: str) -> str:
    """The command-line flag of an option: ``focus_heads`` -> ``--focus-heads``."""
    return "--" + option.replace("_", "-")


@dataclass(frozen=True)
class AnalysisOptions:
    """How to analyse: layers, maps, heads, the base pass, the answer's length and the prompt.

    ``edge_layers``: vision blocks (negative indices, ``"all"``); ``focus_layers``: full-attention
    decoder layers. ``maps``: the map methods to run (None: the default ones, see `lav.methods`).
    ``focus_heads``: ``(layer, head)`` pairs (or ``"L:H L:H"``) for the methods that declare they
    need them (``focus_selected``). ``compare_base``: also run with the LoRA adapter disabled.
    ``system``, ``template``, ``coords`` and ``max_new_tokens`` left at None take the preset's values
    (`for_preset`), else the model's defaults; an item's own ``system``/``template``/``coords``
    (`Visualizer.analyze_many`) win over these. ``answer_rules``: the refusal phrases and sentinels
    (None: the Visualizer's).

    Built, it is checked (`InputError` naming the option and what to pass); it cannot change after.
    """

    edge_layers: LayerArg = (-2, -1)
    focus_layers: LayerArg = -1
    maps: tuple[str, ...] | None = None
    focus_heads: Any = None
    compare_base: bool = False
    max_new_tokens: int | None = None
    system: str | None = None
    template: str | None = None
    coords: str | None = None
    answer_rules: AnswerRules | None = None

    def __post_init__(self) -> None:
        maps = self.maps
        if maps is not None:
            if isinstance(maps, str):
                maps = (maps,)
            if isinstance(maps, (bytes, bytearray)) or not isinstance(maps, (list, tuple)):
                raise InputError(f"maps must be a list of method names, e.g. ['edge', 'focus'], got {maps!r}")
            if not all(isinstance(n, str) for n in maps):
                raise InputError(f"maps must be a list of method names, e.g. ['edge', 'focus'], got {maps!r}")
            object.__setattr__(self, "maps", tuple(maps))
        if not isinstance(self.compare_base, bool):
            raise InputError(f"compare_base must be True or False, got {self.compare_base!r}")
        if self.answer_rules is not None and not isinstance(self.answer_rules, AnswerRules):
            raise InputError(
                f"answer_rules must be a lav.AnswerRules, got {type(self.answer_rules).__name__}"
            )
        check_options(
            system=self.system,
            template=self.template,
            max_new_tokens=self.max_new_tokens,
            edge_layers=self.edge_layers,
            focus_layers=self.focus_layers,
            coords=self.coords,
        )

    def replace(self, **changes: Any) -> AnalysisOptions:
        """A copy with ``changes`` (checked again, as any new options are)."""
        return dataclasses.replace(self, **changes)

    def for_preset(self, preset: Preset | None) -> AnalysisOptions:
        """These options with the preset's system prompt, template, convention and answer length
        where they leave them at None, and the default answer length where neither says."""
        values: dict[str, Any] = {}
        if preset is not None:
            for key in ("system", "template", "coords"):
                if getattr(self, key) is None and getattr(preset, key) is not None:
                    values[key] = getattr(preset, key)
        if self.max_new_tokens is None:
            values["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS if preset is None else preset.max_new_tokens
        return self.replace(**values) if values else self

    def given(self) -> set[str]:
        """The method inputs (`METHOD_INPUTS`) these options set."""
        return {name for name in METHOD_INPUTS if getattr(self, name) is not None}


def options_from(
    options: AnalysisOptions | None, keywords: dict[str, Any], defaults: dict[str, Any] | None = None
) -> AnalysisOptions:
    """``options``, or options built from ``keywords`` (those of `AnalysisOptions`); both at once, with a
    keyword set away from its default (``defaults``: the caller's, where they differ from
    `AnalysisOptions`'), is refused (which would win is not obvious)."""
    if options is None:
        return AnalysisOptions(**keywords)
    if not isinstance(options, AnalysisOptions):
        raise InputError(f"options must be a lav.AnalysisOptions, got {type(options).__name__}")
    defaults = {**{f.name: f.default for f in dataclasses.fields(AnalysisOptions)}, **(defaults or {})}
    clash = sorted(k for k, v in keywords.items() if k in defaults and _plain(v) != _plain(defaults[k]))
    if clash:
        raise InputError(
            f"pass options= or the keywords {', '.join(clash)}, not both; "
            f"set them in the options (options.replace({clash[0]}=...))"
        )
    return options


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
