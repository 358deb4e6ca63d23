"""Answers of today's GUI-grounding models, each with the source it was taken from, and what lav must read.

Each entry: ``source`` (where the string, or its form, comes from), ``text`` (the model's response),
``format`` and ``values`` (the click as written, None for a refusal in words or no answer),
``candidates`` (every point or box of the final answer, the click first), ``refused`` and ``span``
(the text of the part read as the final answer; None when nothing was found). ``rules`` optional
(`lav.AnswerRules`): a model whose refusal is its own.

Strings quoted from a source are marked "quoted"; "form" marks a string written in the documented
form with numbers of our own, used where the case itself (a coordinate in the reasoning that differs
from the answer, a refusal) is the point and no published example has it.
"""

from __future__ import annotations

from lav.coords import AnswerRules

ISSUE = "lav issue 21 (answer forms measured on main with forced answers)"
AUTOGUI = (
    "AutoGUI-v2 FuncElemGnd eval harness (utils/eval_utils/autoguiv2; its parser's 'Case N' comments "
    "quote each model's raw answer)"
)
CLAWGUI = "ZJU-REAL/ClawGUI clawgui-eval/judge/grounding_judge.py @d990d3e (parser docstrings)"
UITARS_TEST = "bytedance/UI-TARS codes/tests/action_parser_test.py @2bcabab"

CORPUS: list[dict] = [
    # --- UI-TARS (v1, 1.5) and Doubao-Seed ----------------------------------------------------
    {
        "source": f"UI-TARS-1.5, quoted: {CLAWGUI} uitars_parse",
        "text": "Action: click(point='<point>197 525</point>')",
        "format": "point-tag",
        "values": (197, 525),
        "candidates": [(197, 525)],
        "refused": False,
        "span": "click(point='<point>197 525</point>')",
    },
    {
        "source": f"UI-TARS, quoted: {UITARS_TEST} test_parse_action_with_box_tokens",
        "text": "Thought: test\nAction: click(start_box='<|box_start|>(112,224)<|box_end|>')",
        "format": "ui-tars",
        "values": (112, 224),
        "candidates": [(112, 224)],
        "refused": False,
        "span": "click(start_box='<|box_start|>(112,224)<|box_end|>')",
    },
    {
        "source": f"UI-TARS, quoted: {AUTOGUI} Case 4",
        "text": "Action: click(start_box='(1786,924)')",
        "format": "ui-tars",
        "values": (1786, 924),
        "candidates": [(1786, 924)],
        "refused": False,
        "span": "click(start_box='(1786,924)')",
    },
    {
        "source": "UI-TARS, form: bytedance/UI-TARS codes/ui_tars/prompt.py 'Thought: ... Action: ...' with a "
        "point named in the thought (the case of issue 21)",
        "text": "Thought: The Save icon at (102, 37) is greyed out; the enabled one is in the dialog.\n"
        "Action: click(start_box='(523,287)')",
        "format": "ui-tars",
        "values": (523, 287),
        "candidates": [(523, 287)],
        "refused": False,
        "span": "click(start_box='(523,287)')",
    },
    {
        "source": f"Doubao-Seed compact action, quoted: {UITARS_TEST} test_parse_doubao_seed_compact_action",
        "text": "<think_never_used_51bce0c785ca2f68081bfa7d91973934>Click the orientation menu."
        "</think_never_used_51bce0c785ca2f68081bfa7d91973934>click>point>point>112 56",
        "format": "seed-compact",
        "values": (112, 56),
        "candidates": [(112, 56)],
        "refused": False,
        "span": "click>point>point>112 56",
    },
    {
        "source": f"Seed 1.8, form: {CLAWGUI} seed18_parse ('<point>x y</point>, takes the last match: the "
        "final answer is at the end of the reasoning chain')",
        "text": "The toolbar button <point>120 40</point> only opens a menu. The Export entry sits below it: "
        "<point>512 610</point>",
        "format": "point-tag",
        "values": (512, 610),
        "candidates": [(512, 610)],
        "refused": False,
        "span": "<point>512 610</point>",
    },
    {
        "source": f"several <point> in one answer, form: {CLAWGUI} seed18_parse / {ISSUE}",
        "text": "<point>512 610</point> <point>530 640</point>",
        "format": "point-tag",
        "values": (512, 610),
        "candidates": [(512, 610), (530, 640)],
        "refused": False,
        "span": "<point>512 610</point> <point>530 640</point>",
    },
    # --- MAI-UI -----------------------------------------------------------------------------------
    {
        "source": f"MAI-UI, quoted: {CLAWGUI} maiui_parse",
        "text": '<answer>{"coordinate": [73, 19]}</answer>',
        "format": "json-coordinate",
        "values": (73, 19),
        "candidates": [(73, 19)],
        "refused": False,
        "span": '{"coordinate": [73, 19]}',
    },
    {
        "source": "MAI-UI, form: Tongyi-MAI/MAI-UI src/prompt.py MAI_MOBILE_SYS_PROMPT_GROUNDING "
        "('<grounding_think>...</grounding_think>\\n<answer>\\n{\"coordinate\": [x,y]}\\n</answer>')",
        "text": "<grounding_think>The gear at [912, 40] is the system settings; the app's own settings "
        'entry is the row below the avatar.</grounding_think>\n<answer>\n{"coordinate": [73, 19]}\n</answer>',
        "format": "json-coordinate",
        "values": (73, 19),
        "candidates": [(73, 19)],
        "refused": False,
        "span": '{"coordinate": [73, 19]}',
    },
    # --- Qwen computer_use, GUI-Owl, JEDI --------------------------------------------------------
    {
        "source": f"JEDI (Qwen2.5-VL computer_use), quoted: {AUTOGUI} Case 6",
        "text": '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", '
        '"coordinate": [453, 258]}}\n</tool_call>',
        "format": "json-coordinate",
        "values": (453, 258),
        "candidates": [(453, 258)],
        "refused": False,
        "span": '{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [453, 258]}}',
    },
    {
        "source": f"Qwen3-VL computer_use, form: {CLAWGUI} qwen3vl_parse with a sentence first (agents "
        "say what they will do before the tool call)",
        "text": 'The Save button is left of Cancel at (610, 880); clicking it.\n<tool_call>\n{"name": '
        '"computer_use", "arguments": {"action": "left_click", "coordinate": [540, 880]}}\n</tool_call>',
        "format": "json-coordinate",
        "values": (540, 880),
        "candidates": [(540, 880)],
        "refused": False,
        "span": '{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [540, 880]}}',
    },
    {
        "source": "GUI-Owl-1.5 refusal, form: ZJU-REAL/ClawGUI clawgui-eval/judge/osworld_g_judge.py "
        '_is_refusal_output (\'"action": "terminate"\'); a preset names the phrase',
        "text": '<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": '
        '"failure"}}\n</tool_call>',
        "rules": AnswerRules(refusal_phrases=('"action": "terminate"',)),
        "format": "refusal-phrase",
        "values": None,
        "candidates": [],
        "refused": True,
        "span": '{"name": "computer_use", "arguments": {"action": "terminate", "status": "failure"}}',
    },
    # --- InfiGUI-G1, GUI-R1 ----------------------------------------------------------------------
    {
        "source": f"InfiGUI-G1, quoted: {AUTOGUI} Case 9 (the part after </think>)",
        "text": '[{"point_2d": [1007, 924], "label": "UI element for \\"Go Here\\""}, '
        '{"point_2d": [1021, 74], "label": "UI element for \\"Go Here\\""}]',
        "format": "json-point_2d",
        "values": (1007, 924),
        "candidates": [(1007, 924), (1021, 74)],
        "refused": False,
        "span": '{"point_2d": [1007, 924], "label": "UI element for \\"Go Here\\""}, '
        '{"point_2d": [1021, 74], "label": "UI element for \\"Go Here\\""}',
    },
    {
        "source": f"InfiGUI-G1 with its reasoning, form: {AUTOGUI} Case 9 (the harness splits at </think>)",
        "text": "<think>The 'Go Here' link appears twice: in the banner near [640, 80] and in the list."
        '</think>\n```json\n[{"point_2d": [1007, 924], "label": "Go Here"}, '
        '{"point_2d": [1021, 74], "label": "Go Here"}]\n```',
        "format": "json-point_2d",
        "values": (1007, 924),
        "candidates": [(1007, 924), (1021, 74)],
        "refused": False,
        "span": '```json\n[{"point_2d": [1007, 924], "label": "Go Here"}, '
        '{"point_2d": [1021, 74], "label": "Go Here"}]\n```',
    },
    {
        "source": f"GUI-R1, quoted: {AUTOGUI} Case 10",
        "text": "<answer>[{'action': 'click', 'point': [2200, 354], 'input_text': 'no input text'}]</answer>",
        "format": "json-point",
        "values": (2200, 354),
        "candidates": [(2200, 354)],
        "refused": False,
        "span": "[{'action': 'click', 'point': [2200, 354], 'input_text': 'no input text'}]",
    },
    # --- Holo, OpenCUA, Step-GUI, UI-Venus, GUI-G2 ------------------------------------------------
    {
        "source": f"Holo1.5, quoted: {AUTOGUI} Case 7",
        "text": '{"action": "click_absolute", "x": 1043, "y": 502}',
        "format": "key-value",
        "values": (1043, 502),
        "candidates": [(1043, 502)],
        "refused": False,
        "span": '"x": 1043, "y": 502',
    },
    {
        "source": f"OpenCUA, quoted: {AUTOGUI} Case 8",
        "text": "## Code:\n```python\npyautogui.click(x=3167, y=360)\n```\n",
        "format": "pyautogui",
        "values": (3167, 360),
        "candidates": [(3167, 360)],
        "refused": False,
        "span": "pyautogui.click(x=3167, y=360)",
    },
    {
        "source": "OpenCUA / GUI-G2 refusal, form: shared/EVAL.md answer table ('x=-1,y=-1') and " + ISSUE,
        "text": "## Code:\n```python\npyautogui.click(x=-1, y=-1)\n```\n",
        "format": "pyautogui",
        "values": (-1, -1),
        "candidates": [(-1, -1)],
        "refused": True,
        "span": "pyautogui.click(x=-1, y=-1)",
    },
    {
        "source": "negative pixels that are no sentinel: a multi-monitor pyautogui script on GitHub, quoted "
        "(pyautogui.click(x=-1282, y=917))",
        "text": "pyautogui.click(x=-1282, y=917)",
        "format": "pyautogui",
        "values": (-1282, 917),
        "candidates": [(-1282, 917)],
        "refused": False,
        "span": "pyautogui.click(x=-1282, y=917)",
    },
    {
        "source": f"Step-GUI, quoted: {CLAWGUI} stepgui_parse ('point:107,611', 0-999)",
        "text": "point:107,611",
        "format": "step-point",
        "values": (107, 611),
        "candidates": [(107, 611)],
        "refused": False,
        "span": "point:107,611",
    },
    {
        "source": f"UI-Venus-1.5 refusal, quoted: {CLAWGUI} uivenus15_parse ('Special value [-1, -1]')",
        "text": "[-1, -1]",
        "format": "list",
        "values": (-1, -1),
        "candidates": [(-1, -1)],
        "refused": True,
        "span": "[-1, -1]",
    },
    {
        "source": "UI-Venus-Ground / GUI-G2 box refusal, form: shared/EVAL.md answer table ('[-1,-1,-1,-1]')",
        "text": "[-1,-1,-1,-1]",
        "format": "box-list",
        "values": (-1, -1, -1, -1),
        "candidates": [(-1, -1, -1, -1)],
        "refused": True,
        "span": "[-1,-1,-1,-1]",
    },
    {
        "source": f"UI-Venus-1.5 box, form: {CLAWGUI} uivenus15_parse ('[x1, y1, x2, y2]', 0-1000)",
        "text": "[412, 188, 470, 214]",
        "format": "box-list",
        "values": (412, 188, 470, 214),
        "candidates": [(412, 188, 470, 214)],
        "refused": False,
        "span": "[412, 188, 470, 214]",
    },
    # --- Qwen2-VL family, OS-Atlas, GLM -----------------------------------------------------------
    {
        "source": f"OS-Atlas (special tokens dropped by decoding), quoted: {AUTOGUI} Case 5",
        "text": "close button(744,381),(756,400)",
        "format": "box-pairs",
        "values": (744, 381, 756, 400),
        "candidates": [(744, 381, 756, 400)],
        "refused": False,
        "span": "(744,381),(756,400)",
    },
    {
        "source": f"GLM-4.5V, quoted: {AUTOGUI} Case 2",
        "text": "The bounding box for the 'wall_95' entry in the Outliner list is "
        "<|begin_of_box|>[816, 162, 838, 172]<|end_of_box|>.",
        "format": "box-list",
        "values": (816, 162, 838, 172),
        "candidates": [(816, 162, 838, 172)],
        "refused": False,
        "span": "[816, 162, 838, 172]",
    },
    # --- 0-1 fractions: ShowUI, Aguvis, SeeClick ---------------------------------------------------
    {
        "source": "ShowUI, form: showlab/ShowUI-2B model card ('[x, y] ... relative coordinate ... scaled "
        "from 0 to 1'); shared/EVAL.md",
        "text": "[0.73, 0.21]",
        "format": "list",
        "values": (0.73, 0.21),
        "candidates": [(0.73, 0.21)],
        "refused": False,
        "span": "[0.73, 0.21]",
    },
    {
        "source": "Aguvis, form: xlang-ai/aguvis pyautogui actions on 0-1; shared/EVAL.md",
        "text": "pyautogui.click(x=0.12, y=0.56)",
        "format": "pyautogui",
        "values": (0.12, 0.56),
        "candidates": [(0.12, 0.56)],
        "refused": False,
        "span": "pyautogui.click(x=0.12, y=0.56)",
    },
    {
        "source": "SeeClick, form: njucckevin/SeeClick pretrain/screenspot_test.py '(x,y)' on 0-1",
        "text": "(0.49,0.40)",
        "format": "tuple",
        "values": (0.49, 0.40),
        "candidates": [(0.49, 0.40)],
        "refused": False,
        "span": "(0.49,0.40)",
    },
    # --- Gemini ------------------------------------------------------------------------------------
    {
        "source": "Gemini, form: Gemini API image-understanding docs (box_2d = [ymin, xmin, ymax, xmax] "
        f"on 0-1000, a JSON list in a code fence); {AUTOGUI} GEMINI_GROUNDING_PROMPT",
        "text": '```json\n[\n  {"box_2d": [120, 340, 180, 520], "label": "Save button"}\n]\n```',
        "format": "json-box_2d",
        "values": (120, 340, 180, 520),
        "candidates": [(120, 340, 180, 520)],
        "refused": False,
        "span": '{"box_2d": [120, 340, 180, 520], "label": "Save button"}',
    },
    # --- forms read wrong on main (issue 21) -------------------------------------------------------
    {
        "source": f"full-width punctuation, quoted: {ISSUE}",
        "text": "（523，287）",
        "format": "tuple",
        "values": (523, 287),
        "candidates": [(523, 287)],
        "refused": False,
        "span": "（523，287）",
    },
    {
        "source": f"Step-GUI form, quoted: {ISSUE}",
        "text": "point:523,287",
        "format": "step-point",
        "values": (523, 287),
        "candidates": [(523, 287)],
        "refused": False,
        "span": "point:523,287",
    },
    {
        "source": f"numbers with a px unit, form: {ISSUE}",
        "text": "The button is at (523px, 287px).",
        "format": "tuple",
        "values": (523, 287),
        "candidates": [(523, 287)],
        "refused": False,
        "span": "(523px, 287px)",
    },
    {
        "source": "thinking model, form: shared/DESIGN.md ('<think>' reasoning names other coordinates)",
        "text": "<think>The first match, (100, 200), is a label; the button is below it.</think>\n(523, 287)",
        "format": "tuple",
        "values": (523, 287),
        "candidates": [(523, 287)],
        "refused": False,
        "span": "(523, 287)",
    },
    {
        "source": "ScreenSpot-Pro negative, quoted: likaixin2000/ScreenSpot-Pro-GUI-Grounding models/qwen2vl.py "
        "(the prompt offers 'Target does not exist')",
        "text": "Target does not exist",
        "format": "refusal-phrase",
        "values": None,
        "candidates": [],
        "refused": True,
        "span": "Target does not exist",
    },
    {
        "source": "reasoning cut off by max_new_tokens (the default of 64), form: shared/EVAL.md "
        "('Reasoning models need max_new_tokens of 512+')",
        "text": "<think>The Save button is at (100, 200), but the dialog",
        "format": None,
        "values": None,
        "candidates": [],
        "refused": False,
        "span": None,
    },
]
