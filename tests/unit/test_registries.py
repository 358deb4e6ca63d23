"""A map method, a benchmark format and a command are each one new file plus one line (README
"Layout"): each test copies the registry's folder of lav, adds one module and one line to the
registry's ``ENTRIES``, checks that nothing else changed, and finds the new one where users see it
(``lav.methods.registered()`` and ``lav run --help``; format detection, loading and ``lav eval
--help``; ``lav --help`` and the command itself) in a fresh interpreter on that copy.
"""

from __future__ import annotations

import ast
import difflib
import filecmp
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lav
import lav.cli.commands
import lav.eval.formats
import lav.methods
from lav.registries import load

SRC = Path(lav.__file__).parent

#: (registry module, its file under lav/, the package its entries are in)
REGISTRIES = [
    (lav.methods, "methods/__init__.py", "lav.methods"),
    (lav.eval.formats, "eval/formats/__init__.py", "lav.eval.formats"),
    (lav.cli.commands, "cli/commands.py", "lav.cli"),
]


def _overlay(tmp: Path, room: str) -> Path:
    """A lav under ``tmp`` whose folder ``room`` (e.g. "eval/formats") is a copy and everything else
    a link to this lav's files; returns the copied folder."""
    src, dst = SRC, tmp / "lav"
    dst.mkdir()
    for part in Path(room).parts:
        for child in src.iterdir():
            if child.name not in (part, "__pycache__"):
                (dst / child.name).symlink_to(child)
        src, dst = src / part, dst / part
        dst.mkdir()
    dst.rmdir()
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _add_entry(registry: Path, entry: str) -> None:
    """Adds ``entry`` as the last line of the registry's ``ENTRIES`` tuple."""
    text = registry.read_text(encoding="utf-8")
    (node,) = [
        n
        for n in ast.parse(text).body
        if isinstance(n, ast.Assign) and [ast.unparse(t) for t in n.targets] == ["ENTRIES"]
    ]
    lines = text.splitlines(keepends=True)
    closing = node.value.end_lineno - 1  # the line of ")"
    lines.insert(closing, f'    "{entry}",\n')
    registry.write_text("".join(lines), encoding="utf-8")


def _changes(original: Path, copy: Path) -> tuple[list[str], list[str]]:
    """(files added, lines changed in files both have) between a folder of lav and its copy."""
    added, changed = [], []

    def walk(cmp: filecmp.dircmp, rel: str) -> None:
        added.extend(rel + n for n in cmp.right_only if n != "__pycache__")
        for name in cmp.diff_files:
            a = (Path(cmp.left) / name).read_text(encoding="utf-8").splitlines()
            b = (Path(cmp.right) / name).read_text(encoding="utf-8").splitlines()
            changed.extend(
                f"{rel}{name}: {line}"
                for line in difflib.unified_diff(a, b, lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            )
        for name, sub in cmp.subdirs.items():
            if name != "__pycache__":
                walk(sub, f"{rel}{name}/")

    walk(filecmp.dircmp(original, copy, ignore=["__pycache__"]), "")
    return added, changed


def _python(tmp: Path, *args: str) -> str:
    """stdout of the interpreter running ``args`` on the lav under ``tmp``; fails on an error."""
    path = os.pathsep.join(p for p in (str(tmp), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("registry", "file", "package"), REGISTRIES, ids=lambda r: getattr(r, "__name__", "")
)
def test_every_registry_line_is_one_entry_and_names_what_is_registered(registry, file, package):
    lines = (SRC / file).read_text(encoding="utf-8").splitlines()
    for entry in registry.ENTRIES:
        assert lines.count(f'    "{entry}",') == 1, f"{file}: {entry!r} is not alone on its line"
    assert len(set(registry.ENTRIES)) == len(registry.ENTRIES)
    assert load(package, registry.ENTRIES)  # what the registry holds is what its lines name


def test_the_registries_keep_the_order_lav_had():
    assert lav.methods.registered() == (
        "edge",
        "focus",
        "indexer_selection",
        "focus_sink_masked",
        "focus_selected",
        "focus_relative",
        "focus_grad",
        "edge_rollout",
    )
    assert [f.name for f in lav.eval.formats.REGISTRY] == [
        "screenspot",
        "screenspot-pro",
        "osworld-g",
        "ui-vision",
        "mmbench-gui",
        "venusbench-gd",
        "jsonl",
        "hf",
    ]
    names = ["run", "demo", "serve", "eval", "demo-data", "evolve", "plan", "presets", "conventions"]
    assert [c.NAME for c in lav.cli.commands.COMMANDS] == names
    assert lav.methods.Edge is load("lav.methods", ["edge:Edge"])[0]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("edgee:Edge", "registry entry 'edgee:Edge': there is no module lav.methods.edgee"),
        ("edge:Edgee", "registry entry 'edge:Edgee': module lav.methods.edge has no Edgee"),
    ],
)
def test_an_entry_that_names_nothing_fails_naming_the_entry(entry, says):
    with pytest.raises(ImportError, match=says):
        load("lav.methods", ["edge:Edge", entry])


def test_a_failing_import_inside_an_entrys_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "lavtestpkg").mkdir()
    (tmp_path / "lavtestpkg" / "__init__.py").write_text("")
    (tmp_path / "lavtestpkg" / "needy.py").write_text("import lav_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="lav_no_such_dependency"):
        load("lavtestpkg", ["needy"])
    sys.modules.pop("lavtestpkg", None)


def test_a_map_method_is_one_file_and_one_line(tmp_path):
    room = _overlay(tmp_path, "methods")
    (room / "block0.py").write_text(
        textwrap.dedent('''\
            """Block 0: the attention each patch receives in the first vision block."""

            from ..capture import vision_received
            from ..result import Map
            from .base import Item, MapMethod, Needs, Selection, minmax


            class Block0(MapMethod):
                name = "block0"
                default = False

                def needs(self, selection: Selection) -> Needs:
                    return Needs(vision_blocks=(0,))

                def reduce(self, item: Item, selection: Selection) -> list[Map]:
                    heads = vision_received(item.rec, 0, item.grids)[item.image_index]
                    return [Map("block0", minmax(heads.mean(0)[0]), "patch", "edge", "Block 0")]
            '''),
        encoding="utf-8",
    )
    _add_entry(room / "__init__.py", "block0:Block0")
    assert _changes(SRC / "methods", room) == (["block0.py"], ['__init__.py: +    "block0:Block0",'])

    # One interpreter (torch loads once): the registry, a choice of maps, then `lav run --help`.
    out = _python(
        tmp_path,
        "-c",
        "import lav, lav.methods as m; print(lav.__file__); print(m.registered()); "
        "print([x.name for x in m.chosen(['edge', 'block0'])]); "
        "from lav.cli import main; main(['run', '--help'])",
    )
    file, names, chosen, *help_lines = out.splitlines()
    assert file == str(tmp_path / "lav" / "__init__.py")
    assert names == str((*lav.methods.registered(), "block0"))
    assert chosen == "['edge', 'block0']"
    assert "more: focus_sink_masked, focus_selected, focus_relative, focus_grad, edge_rollout, block0" in (
        " ".join(" ".join(help_lines).split())
    )


def test_a_benchmark_format_is_one_file_and_one_line(tmp_path):
    room = _overlay(tmp_path, "eval/formats")
    (room / "mybench.py").write_text(
        textwrap.dedent('''\
            """MyBench: JSON Lines rows, in files called mybench_*.jsonl."""

            from pathlib import Path

            from .base import Format, Parsed, ReadOptions, Spec
            from .jsonl import read_jsonl


            def _read(path: Path, options: ReadOptions) -> Parsed:
                return read_jsonl(path, path.parent / "images", options.bbox)


            FORMAT = Format(
                name="mybench",
                layout="mybench_*.jsonl",
                read=_read,
                rank=45,
                by_name=lambda p: p.name.startswith("mybench_"),
                official=Spec("MyBench", micro="Acc"),
            )
            '''),
        encoding="utf-8",
    )
    _add_entry(room / "__init__.py", "mybench:FORMAT")
    assert _changes(SRC / "eval" / "formats", room) == (
        ["mybench.py"],
        ['__init__.py: +    "mybench:FORMAT",'],
    )

    data = tmp_path / "mybench_test.jsonl"
    data.write_text('{"image": "a.png", "instruction": "the OK button", "bbox": [1, 2, 30, 40]}\n')
    out = _python(
        tmp_path,
        "-c",
        "import sys; from lav.eval.datasets import FORMATS, detect_format, load_dataset; "
        "from lav.eval.official import SPECS; d = load_dataset(sys.argv[1]); "
        "print(FORMATS); print(detect_format(sys.argv[1])); print(d.format, len(d.samples)); "
        "print(SPECS['mybench'].benchmark)",
        str(data),
    )
    formats, detected, loaded, benchmark = out.splitlines()
    assert formats == str((*(f.name for f in lav.eval.formats.REGISTRY), "mybench"))
    assert (detected, loaded, benchmark) == ("mybench", "mybench 1", "MyBench")
    help_text = _python(tmp_path, "-m", "lav.cli", "eval", "--help")
    assert "jsonl,hf,mybench}" in help_text


def test_a_command_is_one_file_and_one_line(tmp_path):
    room = _overlay(tmp_path, "cli")
    (room / "hello.py").write_text(
        textwrap.dedent('''\
            """lav hello: says hello."""

            NAME = "hello"


            def add_parser(sub):
                sub.add_parser(NAME, help="say hello").add_argument("--who", default="world")


            def run(args) -> int:
                print(f"hello {args.who}")
                return 0
            '''),
        encoding="utf-8",
    )
    _add_entry(room / "commands.py", "hello")
    assert _changes(SRC / "cli", room) == (["hello.py"], ['commands.py: +    "hello",'])

    help_text = _python(tmp_path, "-m", "lav.cli", "--help")
    assert "{run,demo,serve,eval,demo-data,evolve,plan,presets,conventions,hello}" in help_text
    assert "say hello" in help_text
    assert _python(tmp_path, "-m", "lav.cli", "hello", "--who", "you") == "hello you\n"
