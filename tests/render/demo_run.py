"""A real comparison with every map: `lav run --compare-base --maps ...` on the shipped demo model.

Shared by the view tests (tests/render) and the browser tests (tests/browser): every view is checked
on this command's own output folder, never on a result built by hand.
"""

from __future__ import annotations

from pathlib import Path

from lav.cli import main
from lav.demo import assets

#: Every map method that runs on the demo model (indexer_selection needs indexed-attention layers,
#: focus_selected needs --focus-heads).
MAPS = ("edge", "focus", "focus_relative", "focus_sink_masked", "focus_grad", "edge_rollout")


def demo_comparison(out: Path) -> Path:
    """Run the demo model with its adapter, the base comparison and every map into ``out``."""
    args = ["run", "--model", str(assets.BASE), "--adapter", str(assets.ADAPTER)]
    args += ["--image", str(assets.SCREEN), "--instruction", assets.instruction(), "--compare-base"]
    args += ["--maps", ",".join(MAPS), "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    return out
