"""Journey (b): ``lav run --out`` -> ``lav.Result.load`` in a notebook (a real Jupyter kernel, run
by nbclient) -> ``lav serve --results`` on the same folder. The notebook also loads the demo model
by name and must stay quiet: no loading bar, no bitsandbytes message, no warning in any cell.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import transformers
from fastapi.testclient import TestClient
from PIL import Image

import lav
from lav.demo import assets
from lav.serve.app import create_app
from tests.deps import require

from .journeys import lav as run_lav

pytestmark = pytest.mark.slow

INSTRUCTION = "Click the purple triangle"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-run") / "results"
    run_lav(
        "run", "--model", "demo", "--adapter", "demo", "--image", assets.SCREEN,
        "--instruction", INSTRUCTION, "--compare-base", "--device", "cpu", "--out", root / "run",
    )  # fmt: skip
    return root


def _kernel_run(cells: list[str]):
    """Run ``cells`` in a fresh python3 Jupyter kernel (this interpreter, this environment); the cells
    as executed, with their outputs."""
    nbclient = require("nbclient", "pip install -e '.[dev]' (nbclient, ipykernel, nbformat)")
    nbformat = require("nbformat", "pip install -e '.[dev]'")
    require("ipykernel", "pip install -e '.[dev]'")

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    return nb.cells


def _streams(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.fixture(scope="module")
def notebook(results):
    folder = results / "run"
    return _kernel_run(
        [
            "import lav, warnings\nwarnings.simplefilter('default')\nprint(lav.__file__)",
            f"res = lav.Result.load({str(folder)!r})\nres",
            "viz = lav.load('demo', adapter='demo', device='cpu')\nprint(type(viz).__name__)",
            "viz2 = lav.load('demo', device='cpu', progress=True)",
        ]
    )


def test_the_kernel_runs_this_lav(notebook):
    assert _streams(notebook[0]).strip() == lav.__file__


def test_a_saved_run_shows_in_the_notebook(notebook, results):
    record = json.loads((results / "run" / "result.json").read_text())
    (shown,) = [o for o in notebook[1].outputs if o.output_type == "execute_result"]
    page = shown["data"]["text/html"]
    assert INSTRUCTION in page or record["response"] in page
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert pngs, "the notebook view shows no picture"
    for data in pngs:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    assert _streams(notebook[1]) == ""


def test_loading_the_demo_by_name_in_a_notebook_is_quiet(notebook):
    cell = notebook[2]
    assert [o.output_type for o in cell.outputs] == ["stream"], cell.outputs
    assert _streams(cell) == "Visualizer\n", "a load wrote to the cell: " + _streams(cell)


def test_loading_bars_show_when_asked_for(notebook):
    text = _streams(notebook[3])
    assert "bitsandbytes" not in text and "kernels-community" not in text
    if int(transformers.__version__.split(".")[0]) >= 5:  # 4.57 draws no bar for an unsharded checkpoint
        assert "Loading weights" in text


def test_the_same_folder_opens_in_lav_serve(results):
    with TestClient(create_app(None, [results]), base_url="http://127.0.0.1") as client:
        (found,) = client.get("/api/browse").json()["results"]
        assert found["path"] == "run" and found["instruction"] == INSTRUCTION and found["has_base"]
        rec = client.get(f"/api/results/{found['id']}").json()
        saved = json.loads((results / "run" / "result.json").read_text())
        assert rec["response"] == saved["response"] and rec["base"]["response"] == saved["base"]["response"]
        with np.load(results / "run" / "maps.npz") as maps:
            for name in ("edge", "focus", "base_focus", "focus_diff"):
                served = client.get(f"/api/results/{found['id']}/maps/{name}")
                np.testing.assert_array_equal(np.load(io.BytesIO(served.content)), maps[name])
