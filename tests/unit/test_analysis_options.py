"""`lav.AnalysisOptions`: checked once when built, frozen after; a method's declared needs
(`MapMethod.requires`) decide what `lav serve` and `lav eval` refuse, not a list of names."""

from __future__ import annotations

import dataclasses

import pytest

import lav
from lav import methods
from lav.errors import InputError
from lav.options import DEFAULT_MAX_NEW_TOKENS, AnalysisOptions, options_from
from lav.presets import get_preset


def test_it_is_exported_and_its_defaults_are_analyze_s():
    assert lav.AnalysisOptions is AnalysisOptions and "AnalysisOptions" in lav.__all__
    opts = AnalysisOptions()
    assert (opts.edge_layers, opts.focus_layers, opts.maps, opts.focus_heads) == ((-2, -1), -1, None, None)
    assert opts.compare_base is False and opts.max_new_tokens is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be from 1"),
        ({"max_new_tokens": True}, "max_new_tokens must be an integer"),
        ({"compare_base": "yes"}, "compare_base must be True or False"),
        ({"edge_layers": "last"}, "edge_layers='last' is not 'all'"),
        ({"focus_layers": []}, "focus_layers is empty"),
        ({"template": "Task:"}, "must contain '{instruction}'"),
        ({"system": "<|im_start|>system"}, "system prompt contains '<|im_start|>'"),
        ({"coords": "pixels"}, "coords must be one of"),
        ({"maps": [1]}, "maps must be a list of method names"),
        ({"answer_rules": "none"}, "answer_rules must be a lav.AnswerRules"),
    ],
)
def test_a_bad_option_is_refused_when_built(kwargs, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace("[", r"\[")):
        AnalysisOptions(**kwargs)


def test_built_options_cannot_change_and_replace_checks_again():
    opts = AnalysisOptions(maps=["edge", "focus"])
    assert opts.maps == ("edge", "focus")  # a list becomes a tuple: the options cannot change
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.max_new_tokens = 3  # type: ignore[misc]
    assert opts.replace(max_new_tokens=3).max_new_tokens == 3
    with pytest.raises(InputError, match="max_new_tokens must be from 1"):
        opts.replace(max_new_tokens=10**6)


def test_the_preset_fills_what_the_options_leave_at_none():
    preset = get_preset("gta1")  # a system prompt, a template, its own convention
    filled = AnalysisOptions(system="Mine.").for_preset(preset)
    assert filled.system == "Mine."  # the caller's value wins
    assert (filled.template, filled.coords, filled.max_new_tokens) == (
        preset.template,
        preset.coords,
        preset.max_new_tokens,
    )
    assert AnalysisOptions().for_preset(None).max_new_tokens == DEFAULT_MAX_NEW_TOKENS


def test_options_and_keywords_at_once_are_refused():
    opts = AnalysisOptions(focus_layers="all")
    assert options_from(opts, {"focus_layers": -1, "maps": None}) is opts  # keywords at their defaults
    with pytest.raises(InputError, match="pass options= or the keywords focus_layers, not both"):
        options_from(opts, {"focus_layers": 0})
    with pytest.raises(InputError, match="options must be a lav.AnalysisOptions"):
        options_from({"focus_layers": 0}, {})  # type: ignore[arg-type]


class _NeedsHeads(methods.MapMethod):
    """Test-only: declares it needs focus heads (its maps are never computed here)."""

    name = "needs_heads_test"
    default = False
    requires = ("focus_heads",)

    def needs(self, selection):
        return methods.Needs()

    def reduce(self, item, selection):
        return []


@pytest.fixture
def needs_heads():
    method = methods.register(_NeedsHeads())
    yield method
    methods.unregister(method.name)


def test_the_declaration_decides_what_serve_refuses(needs_heads):
    from lav.serve.model import check_servable

    assert methods.SelectedHeadsFocus.requires == ("focus_heads",)
    assert methods.needing("focus_heads") == ["focus_selected", "needs_heads_test"]
    check_servable(["edge", "focus"])  # they need nothing: served
    for name in ("focus_selected", "needs_heads_test"):
        with pytest.raises(InputError, match=f"lav serve cannot run the {name} map: it needs focus heads"):
            check_servable([name])
    assert methods.unoffered(["edge", "needs_heads_test"], ("focus_heads",)) == []


def test_a_method_may_require_only_an_option_a_shell_can_offer():
    class _Odd(_NeedsHeads):
        name = "odd_requires_test"
        requires = ("focus_head",)

    with pytest.raises(InputError, match="requires 'focus_head', which is not an option"):
        methods.register(_Odd())
    assert "odd_requires_test" not in methods.registered()
