"""`lav.load` of a model that is not quantized leaves bitsandbytes unimported (peft would import it,
and bitsandbytes would then look for a kernel on the hub), and a quantized load later in the same
process still finds it. Each case in a fresh interpreter: what is imported is process state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.deps import on_ci


def _fresh(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return {"out": json.loads(proc.stdout.strip().splitlines()[-1]), "err": proc.stderr}


def test_a_plain_load_with_an_adapter_imports_no_bitsandbytes():
    got = _fresh(
        """
        import json, sys, lav
        viz = lav.load("demo", adapter="demo", device="cpu")
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "bitsandbytes")))
        """
    )
    assert got["out"] == []
    assert "kernels-community" not in got["err"] and "bitsandbytes" not in got["err"]


def _bitsandbytes_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


@pytest.mark.skipif(not _bitsandbytes_installed() and not on_ci(), reason="bitsandbytes is not installed")
def test_bitsandbytes_is_found_again_after_a_plain_load():
    got = _fresh(
        """
        import json, lav
        lav.load("demo", adapter="demo", device="cpu")
        import peft.import_utils as pi
        from transformers.utils import import_utils as ti
        print(json.dumps([pi.is_bnb_available(), pi.is_bnb_4bit_available(), ti.is_bitsandbytes_available()]))
        """
    )
    assert got["out"] == [True, True, True]
