"""`CheckOptions`: what `lav run` / `lav eval` are asked to check about the maps (``--faithfulness``,
``--removal``, ``--steps``, ``--zoom``, ``--zoom-factor``), checked once where it is built. Torch-free."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError

#: How removed cells are filled: the image's mean colour, or the blurred image.
REMOVALS = ("mean", "blur")
DEFAULT_STEPS = 10
#: Steps of a curve, at most (each is one forced forward per order of cells).
MAX_STEPS = 100
DEFAULT_ZOOM_FACTOR = 2.0
#: Random orders whose curves are averaged into the ``random`` baseline.
RANDOM_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class CheckOptions:
    """``faithfulness``: deletion / insertion curves of every map (`lav.faithful.faithfulness`);
    ``removal``: how a removed cell is filled (``mean`` colour or ``blur``); ``steps``: points of a
    curve after the first (a fixed fraction of the cells each); ``zoom``: the attention-guided zoom
    test (`lav.faithful.zoom`), cropping ``1/zoom_factor`` of each side around each map's peak;
    ``batch_size``: step images per forced forward (None: as many as `lav.faithful.decode.CACHE_BUDGET`
    bytes of key/value cache hold, at most the steps of one order, deletion and insertion)."""

    faithfulness: bool = False
    removal: str = "mean"
    steps: int = DEFAULT_STEPS
    zoom: bool = False
    zoom_factor: float = DEFAULT_ZOOM_FACTOR
    batch_size: int | None = None

    def __post_init__(self) -> None:
        for key in ("faithfulness", "zoom"):
            if not isinstance(getattr(self, key), bool):
                raise InputError(f"{key} must be True or False, got {getattr(self, key)!r}")
        if self.removal not in REMOVALS:
            raise InputError(f"removal must be one of {', '.join(REMOVALS)}, got {self.removal!r}")
        if (
            isinstance(self.steps, bool)
            or not isinstance(self.steps, int)
            or not 2 <= self.steps <= MAX_STEPS
        ):
            raise InputError(f"steps must be a whole number from 2 to {MAX_STEPS}, got {self.steps!r}")
        factor = self.zoom_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
            raise InputError(f"zoom_factor must be a number above 1, got {factor!r}")
        if not 1 < factor <= 64:
            raise InputError(
                f"zoom_factor must be above 1 and at most 64 (2: half of each side), got {factor}"
            )
        object.__setattr__(self, "zoom_factor", float(factor))
        b = self.batch_size
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise InputError(f"batch_size must be a positive whole number or None, got {b!r}")

    @property
    def any(self) -> bool:
        return self.faithfulness or self.zoom

    def to_dict(self) -> dict[str, Any]:
        """What a folder records (``run.json``): the settings the checks' numbers depend on."""
        out = asdict(self)
        out.pop("batch_size")
        return out


def add_check_args(p: argparse.ArgumentParser) -> None:
    """``--faithfulness``, ``--removal``, ``--steps``, ``--faithfulness-batch-size``, ``--zoom``,
    ``--zoom-factor`` on a command."""
    from ..argtypes import whole

    g = p.add_argument_group("does the map explain the click")
    g.add_argument(
        "--faithfulness",
        action="store_true",
        help="remove the image cell by cell in each map's order (and insert it into a blurred image) and "
        "record the answer's probability and click: deletion / insertion curves against random orders",
    )
    g.add_argument(
        "--removal", choices=REMOVALS, help="how removed cells are filled: mean colour (default) or blur"
    )
    g.add_argument(
        "--steps", type=whole(2, MAX_STEPS), help=f"points of each curve (default {DEFAULT_STEPS})"
    )
    g.add_argument(
        "--faithfulness-batch-size",
        type=whole(1, 10_000),
        metavar="N",
        help="step images per forced forward (default: as many as 2 GiB of key/value cache holds, at most "
        "twice --steps; see lav plan)",
    )
    g.add_argument(
        "--zoom", action="store_true", help="crop around each map's peak, ask again, map the click back"
    )
    g.add_argument(
        "--zoom-factor",
        type=_factor,
        help=f"the crop is 1/FACTOR of each side (default {DEFAULT_ZOOM_FACTOR:g})",
    )


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 1, got {text[:40]!r}") from None
    if not math.isfinite(value) or not 1 < value <= 64:
        raise argparse.ArgumentTypeError(f"must be above 1 and at most 64, got {text[:40]!r}")
    return value


def check_options(args: argparse.Namespace) -> CheckOptions | None:
    """The `CheckOptions` of a command's arguments, or None when no check is asked for; an option of
    a check that is not asked for is refused (it would do nothing)."""
    if args.removal is not None and not args.faithfulness:
        raise InputError("--removal needs --faithfulness")
    if args.steps is not None and not args.faithfulness:
        raise InputError("--steps needs --faithfulness")
    if args.faithfulness_batch_size is not None and not args.faithfulness:
        raise InputError("--faithfulness-batch-size needs --faithfulness")
    if args.zoom_factor is not None and not args.zoom:
        raise InputError("--zoom-factor needs --zoom")
    if not (args.faithfulness or args.zoom):
        return None
    return CheckOptions(
        faithfulness=args.faithfulness,
        removal=args.removal or "mean",
        steps=args.steps or DEFAULT_STEPS,
        zoom=args.zoom,
        zoom_factor=DEFAULT_ZOOM_FACTOR if args.zoom_factor is None else args.zoom_factor,
        batch_size=args.faithfulness_batch_size,
    )
