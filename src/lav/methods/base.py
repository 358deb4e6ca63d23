"""The template every map method follows: what it records, and how it reduces a recording to maps.

A method names the vision blocks and decoder layers it needs (`Needs`, from the user's `Selection`);
one capture records the union of every chosen method's needs, and each method then turns its slice
of the recording, one batch item at a time (`Item`), into named `lav.result.Map` records. Nothing
outside a method's module knows what it computes: `Result`, the files and the report iterate over
maps by name. A method that needs more model work (another forward, a backward) gets a `Runner`
in `MapMethod.extra_pass`: the pipeline builds it, so no method imports the pipeline.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..capture import Recording
from ..errors import InputError
from ..geometry import Grid, split_merged_tokens
from ..models import ModelParts
from ..options import METHOD_INPUTS
from ..result import Map


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0,1] float32; a constant array becomes zeros, never NaN."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


@dataclass(frozen=True)
class Selection:
    """The layers the user chose: vision blocks (edge side) and full-attention decoder layers."""

    vision_blocks: tuple[int, ...]
    decoder_layers: tuple[int, ...]
    #: ``(decoder layer, head)`` pairs for ``focus_selected`` (None: every head of the focus layers).
    heads: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class Needs:
    """What a method needs recorded: vision blocks (received attention), decoder layers (rows), and
    decoder layers whose attention input is scanned for massive activations (`Recording.massive`)."""

    vision_blocks: tuple[int, ...] = ()
    decoder_layers: tuple[int, ...] = ()
    hidden_layers: tuple[int, ...] = ()

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            tuple(sorted({*self.vision_blocks, *other.vision_blocks})),
            tuple(sorted({*self.decoder_layers, *other.decoder_layers})),
            tuple(sorted({*self.hidden_layers, *other.hidden_layers})),
        )


@dataclass(frozen=True)
class AnswerRows:
    """Which answer tokens a decision map is about (indices into the answer, 0 = first token).

    ``tokens`` says in words what they are; ``x`` / ``y`` are the digits of each coordinate.
    """

    rows: tuple[int, ...]
    x: tuple[int, ...]
    y: tuple[int, ...]
    tokens: str


@dataclass(frozen=True)
class Item:
    """One batch item's view of a recording, with its geometry.

    ``row``: the item's row in the batch; ``grids``: every image of the batch (the vision sequence
    runs over all of them) and ``image_index`` the index of this item's image among them;
    ``image_positions``: positions of the item's image tokens in its (padded) sequence, raster over
    (h/m, w/m); ``answer_start``: position of its first answer token; ``start``: position of its
    first real token (after the batch's left padding).
    """

    rec: Recording
    parts: ModelParts
    row: int
    grids: Sequence[Grid]
    image_index: int
    image_positions: torch.Tensor
    answer_start: int
    answer: AnswerRows
    start: int = 0
    #: method name -> what its `MapMethod.extra_pass` gave for this item (methods that need one).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        return self.grids[self.image_index]


def merged_grid(item: Item, tokens: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(..., n_image_tokens)`` of this item's image -> ``(..., h/m, w/m)`` float64 raster."""
    return split_merged_tokens(tokens, [item.grid])[0][..., 0, :, :].astype(np.float64)


class Runner(Protocol):
    """The batch a method's `MapMethod.extra_pass` may run the model on again (built by the pipeline,
    `lav.stages`), with what the capture run gave.

    ``requests``: the batch's requests (`lav.stages.Request`, records a method copies with
    `dataclasses.replace`); ``inputs``: its model inputs (left-padded, on the model's device);
    ``grids``: every image's patch grid; ``answer_ids``: each item's answer token ids;
    ``answers``: each item's decision rows.
    """

    model: nn.Module
    parts: ModelParts
    requests: Sequence[Any]
    inputs: dict[str, torch.Tensor]
    grids: Sequence[Grid]
    answer_ids: Sequence[Sequence[int]]
    answers: Sequence[AnswerRows]

    def forced_inputs(self) -> tuple[dict[str, torch.Tensor], list[int]]:
        """The batch's inputs with each item's answer tokens after its prompt (as run, when the answers
        were forced already), and each answer's first position."""
        ...

    def rerun(
        self, requests: Sequence[Any], forced_answers: Sequence[Sequence[int]], needs: Needs
    ) -> list[Item]:
        """One forward over ``requests`` with ``forced_answers`` (token ids) forced after each prompt,
        capture on for ``needs``; each item's view of that recording (its decision rows as this
        batch's)."""
        ...


class MapMethod(ABC):
    """One way of turning attention into maps; subclasses set ``name`` and implement two methods."""

    #: The name of the method's main map (and the prefix of its arrays in maps.npz).
    name: str = ""
    #: Whether `Visualizer.analyze` runs it when ``maps`` is not given; costly methods are opt-in.
    default: bool = True
    #: Options of `lav.AnalysisOptions` the method cannot run without (e.g. ``("focus_heads",)``): given,
    #: they add the method to the default maps; a shell that does not offer one refuses the method.
    requires: tuple[str, ...] = ()

    @abstractmethod
    def needs(self, selection: Selection) -> Needs:
        """What to record for this selection of layers."""

    @abstractmethod
    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        """The method's maps for one batch item."""

    def applies(self, parts: ModelParts) -> bool:
        """Whether the method means anything for this model (run by default only where it does)."""
        return True

    def extra_pass(self, runner: Runner, selection: Selection) -> list[Any] | None:
        """More model work after the capture run, under the same model lock (None: none needed).

        ``runner``: the batch, its answers and the model (`Runner`). One value per batch item,
        handed to `reduce` as ``item.extra[self.name]``. Runs with the adapter as the pass it belongs
        to (on or off).
        """
        return None

    def decision_map(
        self,
        item: Item,
        selection: Selection,
        values: np.ndarray,
        title: str,
        arrays: dict[str, np.ndarray],
        *,
        layers: tuple[int, ...] | None = None,
        info: dict[str, Any] | None = None,
    ) -> Map:
        """A map of the answer's decision on the merged grid, called ``self.name``, drawn as focus.

        ``layers``: the full-attention decoder layers it averages (None: the chosen ones). Its info
        is ``info``, then which answer tokens (``tokens``, ``rows``) and the layers' indices among
        all decoder layers, linear-attention ones included (``decoder_layers``).
        """
        layers = selection.decoder_layers if layers is None else layers
        return Map(
            name=self.name,
            values=values,
            grid="merged",
            style="focus",
            title=title,
            layers=layers,
            arrays=arrays,
            info={
                **(info or {}),
                "tokens": item.answer.tokens,
                "rows": list(item.answer.rows),
                # Layers count attention layers only (Qwen3.5, Qwen4-Exp): these are the model's.
                "decoder_layers": [item.parts.decoder_layer_ids[i] for i in layers],
            },
        )


_REGISTRY: dict[str, MapMethod] = {}
_REGISTRY_LOCK = threading.Lock()


def register(method: MapMethod) -> MapMethod:
    """Make ``method`` available to `Visualizer.analyze` under ``method.name`` (and run by default)."""
    if not isinstance(method, MapMethod) or not method.name.isidentifier():
        raise InputError("a map method is a MapMethod instance whose name is an identifier")
    unknown = [o for o in method.requires if o not in METHOD_INPUTS]
    if unknown:
        raise InputError(
            f"map method {method.name!r} requires {unknown[0]!r}, which is not an option a method may "
            f"require; use one of {', '.join(METHOD_INPUTS)}"
        )
    with _REGISTRY_LOCK:
        if method.name in _REGISTRY:
            raise InputError(f"a map method called {method.name!r} is registered already")
        _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove the method called ``name`` (a no-op for one that is not registered)."""
    with _REGISTRY_LOCK:
        _REGISTRY.pop(name, None)


def registered() -> tuple[str, ...]:
    """Names of the registered methods, in registration order."""
    with _REGISTRY_LOCK:
        return tuple(_REGISTRY)


def chosen(names: Sequence[str] | str | None, parts: ModelParts | None = None) -> list[MapMethod]:
    """The methods called ``names`` (None: the registered ``default`` ones), with a clear error for an
    unknown one.

    With ``parts``, None means the default methods that apply to that model, and a named method
    that does not apply is an error.
    """
    with _REGISTRY_LOCK:
        available = dict(_REGISTRY)
    if names is None:
        return [m for m in available.values() if m.default and (parts is None or m.applies(parts))]
    if isinstance(names, str):
        names = [names]
    if isinstance(names, (bytes, bytearray)) or not all(isinstance(n, str) for n in names):
        raise InputError(f"maps must be a list of method names, e.g. ['edge', 'focus'], got {names!r}")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"unknown map method {unknown[0]!r}; available: {', '.join(available)}")
    if not names:
        raise InputError("maps is empty; name at least one method, e.g. ['edge', 'focus']")
    if parts is not None:
        idle = [n for n in names if not available[n].applies(parts)]
        if idle:
            raise InputError(
                f"map method {idle[0]!r} does not apply to {parts.spec.title or parts.family} models; "
                "leave it out of maps"
            )
    return [available[n] for n in dict.fromkeys(names)]


def needing(option: str, names: Sequence[str] | None = None) -> list[str]:
    """The registered methods (or those of ``names``) that declare they need ``option`` (`MapMethod.requires`)."""
    with _REGISTRY_LOCK:
        available = dict(_REGISTRY)
    return [n for n, m in available.items() if option in m.requires and (names is None or n in names)]


def with_required(methods: list[MapMethod], given: set[str], maps_named: bool) -> list[MapMethod]:
    """``methods`` and, when the maps were not named (``maps_named`` False), the methods that need an
    option the call gives (``given``, see `MapMethod.requires`); with named maps that leave out every
    method that would use a given option, refused (the option would be silently unused)."""
    names = [m.name for m in methods]
    for option in sorted(given):
        users = needing(option)
        if not maps_named:
            methods = [*methods, *chosen([u for u in users if u not in names])] if users else methods
        elif not any(u in names for u in users):
            which = users[0] if users else "no"
            raise InputError(
                f"{option} {METHOD_INPUTS[option][1]} for the {which} map, which maps= leaves out; "
                f"add '{which}' to maps or drop {option}"
            )
    return methods


def unoffered(names: Sequence[str], offered: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``(method, options it needs but a shell does not offer)`` for each of ``names`` that has any."""
    with _REGISTRY_LOCK:
        available = dict(_REGISTRY)
    out = []
    for n in names:
        missing = [o for o in getattr(available.get(n), "requires", ()) if o not in offered]
        if missing:
            out.append((n, missing))
    return out


def with_defaults(names: Sequence[str] | str | None, parts: ModelParts) -> list[str]:
    """The default methods that apply to this model, then ``names`` (checked as `chosen` checks
    them against the model), in that order without repeats: what a command runs when the maps it
    draws itself (edge, focus, ...) must come whatever else is asked for."""
    defaults = [m.name for m in chosen(None, parts)]
    extra = [] if names is None else [m.name for m in chosen(names, parts)]
    return list(dict.fromkeys([*defaults, *extra]))
