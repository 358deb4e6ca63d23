"""One self-contained HTML page for a run or an adapter comparison.

The page opens from disk with no network: images are base64 data URIs, CSS and JS are inlined
from ``assets/``, and a Content-Security-Policy forbids loading anything else. The payload is
embedded as JSON in a ``<script type="application/json">`` block that the single IIFE parses;
nothing is ever pasted into JS source. Every piece of user text goes through `html.escape`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from numbers import Integral, Real
from typing import Any

from .overlay import CLICK_GREEN, CLICK_MARKER, RenderError

__all__ = ["report_html"]

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_PANEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_MAP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_MAP_STYLES = ("edge", "focus")
#: The maps of a payload without a ``maps`` list (the first two methods, drawn in their own colours).
_DEFAULT_MAPS = (
    {"name": "edge", "title": "Edge map", "style": "edge"},
    {"name": "focus", "title": "Decision focus", "style": "focus"},
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _asset(name: str) -> str:
    return (resources.files("lav.render") / "assets" / name).read_text(encoding="utf-8")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays reach the payload from the analysis; .tolist() gives plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _script_json(payload: Mapping[str, Any]) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>``, ``&`` and the JS line separators become escapes.

    These characters can only occur inside JSON strings, where ``\\u003c`` means the same thing, so
    `json.loads` of the block gives back the payload exactly.
    """
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as err:
        raise RenderError(
            f"payload is not plain JSON data ({err}); pass str, numbers, lists and dicts"
        ) from err
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _need(obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise RenderError(f"{where} has no {key!r}; see report_html's docstring for the payload schema")
    value = obj[key]
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise RenderError(f"{where}[{key!r}] must be {names}, got {type(value).__name__}")
    return value


def _image_size(payload: Mapping[str, Any]) -> tuple[int, int]:
    size = _need(payload, "image_size", (list, tuple), "payload")
    if len(size) != 2 or not all(isinstance(s, Integral) and s > 0 for s in size):
        raise RenderError(f"payload['image_size'] must be [width, height] in pixels, got {size!r}")
    return int(size[0]), int(size[1])


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == _PNG and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def _data_uri(images: Mapping[str, bytes], key: Any, where: str) -> tuple[str, tuple[int, int] | None]:
    if not isinstance(key, str) or key not in images:
        raise RenderError(f"{where} names image {key!r}, which is not a key of images")
    data = bytes(images[key])
    if data[:8] == _PNG:
        mime = "image/png"
    elif data[:3] == _JPEG:
        mime = "image/jpeg"
    else:
        raise RenderError(f"images[{key!r}] is neither PNG nor JPEG bytes; encode it with lav.render.to_png")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", _png_size(data)


def _stack(
    layers: Mapping[str, Any],
    images: Mapping[str, bytes],
    where: str,
    size: tuple[int, int],
    names: Sequence[str],
) -> str:
    """Screenshot with its map layers stacked on it; layers must match the screenshot's pixels."""
    w, h = size
    src, shot = _data_uri(images, layers.get("screenshot"), f"{where}['layers']['screenshot']")
    if shot is not None and abs(shot[0] * h - shot[1] * w) > max(w, h):
        # A smaller screenshot is fine (everything is placed in percent), another aspect is not.
        raise RenderError(f"{where} screenshot is {shot[0]}x{shot[1]}, not the aspect of image_size {w}x{h}")
    parts = [f'<img class="screenshot" src="{src}" width="{w}" height="{h}" alt="screenshot">']
    for name in names:
        key = layers.get(name)
        if key is None:
            continue
        src, got = _data_uri(images, key, f"{where}['layers'][{name!r}]")
        if shot is not None and got is not None and got != shot:
            raise RenderError(
                f"{where} {name} layer is {got[0]}x{got[1]} but its screenshot is {shot[0]}x{shot[1]}; "
                "make map layers at the screenshot's size"
            )
        parts.append(f'<img class="layer layer-{name}" data-layer="{name}" src="{src}" alt="">')
    return "".join(parts)


def _crosshair_body(inside: bool, dashed: bool = False) -> str:
    """SVG content of the crosshair in a viewBox of -24..24: green arms, #1e3a5f ring and dot.

    White halos under each part keep it visible on dark and on green screenshots alike. ``dashed``
    (the base model's click in the difference panel) dashes the arms and the ring.
    """
    green = "rgb({},{},{})".format(*CLICK_GREEN)
    marker = "#{:02x}{:02x}{:02x}".format(*CLICK_MARKER)
    arms = "".join(
        f'<line x1="{a}" y1="{b}" x2="{c}" y2="{d}"/>'
        for a, b, c, d in ((-22, 0, -10, 0), (10, 0, 22, 0), (0, -22, 0, -10), (0, 10, 0, 22))
    )
    # An outside click is drawn hollow and dashed at the border: a place to look, not a hit.
    dot = f'<circle r="2.6" fill="{marker}" stroke="#fff" stroke-width="1"/>' if inside else ""
    dash = "" if inside and not dashed else ' stroke-dasharray="3 2"'
    arm_dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (
        f'<g stroke="#fff" stroke-width="5" stroke-linecap="round" opacity="0.8"{arm_dash}>{arms}</g>'
        f'<g stroke="{green}" stroke-width="3" stroke-linecap="round"{arm_dash}>{arms}</g>'
        '<circle r="7.5" fill="none" stroke="#fff" stroke-width="4.5"/>'
        f'<circle r="7.5" fill="none" stroke="{marker}" stroke-width="2.5"{dash}/>{dot}'
    )


def _crosshair_svg(x: float, y: float, size: tuple[int, int], who: str = "", dashed: bool = False) -> str:
    """The click as inline SVG placed in percent of the image, so it follows the screenshot's scale.

    ``who`` ("adapter", "base") names whose click it is where a panel shows two.
    """
    w, h = size
    inside = 0.0 <= x <= w and 0.0 <= y <= h
    left = min(max(100.0 * x / w, 0.0), 100.0)
    top = min(max(100.0 * y / h, 0.0), 100.0)
    label = f"{who + ' ' if who else ''}click at x {x:.1f}, y {y:.1f} px" + (
        "" if inside else " (outside the image)"
    )
    classes = "click" + ("" if inside else " hollow") + (" dashed" if dashed else "")
    data_who = f' data-who="{_e(who)}"' if who else ""
    return (
        f'<svg class="{classes}" data-layer="click"{data_who} viewBox="-24 -24 48 48" '
        f'style="left:{left:.4f}%;top:{top:.4f}%" role="img" aria-label="{_e(label)}">'
        f"{_crosshair_body(inside, dashed)}</svg>"
    )


def _legend(
    names: Sequence[str],
    maps: Mapping[str, Mapping[str, str]],
    difference: bool,
    click_inside: bool = True,
    unchanged: Sequence[str] = (),
) -> str:
    items = []
    for name in names:
        if name in unchanged:
            # An exactly zero difference draws nothing; say so instead of a colour scale for nothing.
            items.append(
                f'<li data-unchanged="{_e(name)}"><span class="swatch none"></span>'
                f"{_e(maps[name]['title'])}: no change (adapter and base maps are identical)</li>"
            )
            continue
        if name == "click":
            svg = f'<svg class="swatch-click" viewBox="-24 -24 48 48" aria-hidden="true">{_crosshair_body(click_inside)}</svg>'
            text = (
                "Click target"
                if click_inside
                else "Click target (outside the image: drawn hollow at the border)"
            )
            items.append(f"<li>{svg}{text}</li>")
        elif difference:
            items.append(
                f'<li><span class="swatch diff"></span>{_e(maps[name]["title"])}: blue base &gt; adapter, '
                "red adapter &gt; base</li>"
            )
        else:
            style = maps[name]["style"]
            items.append(
                f'<li><span class="swatch {style}"></span>{_e(maps[name]["title"])}: low → high</li>'
            )
    return f'<ul class="legend">{"".join(items)}</ul>' if items else ""


def _click(panel: Mapping[str, Any], where: str) -> tuple[float, float, str | None] | None:
    click = panel.get("click")
    if click is None:
        return None
    if not isinstance(click, Mapping):
        raise RenderError(f"{where}['click'] must be {{'x': float, 'y': float, 'note': str | None}} or None")
    x, y = (_need(click, k, Real, f"{where}['click']") for k in ("x", "y"))
    if not (math.isfinite(x) and math.isfinite(y)):
        raise RenderError(f"{where}['click'] is not a finite point ({x}, {y}); use None and a click_note")
    return float(x), float(y), click.get("note")


def _inside(x: float, y: float, size: tuple[int, int]) -> bool:
    return 0 <= x <= size[0] and 0 <= y <= size[1]


def _panel(
    panel: Any,
    index: int,
    payload: Mapping[str, Any],
    images: Mapping[str, bytes],
    size: tuple[int, int],
    maps: Mapping[str, Mapping[str, str]],
) -> str:
    where = f"payload['panels'][{index}]"
    if not isinstance(panel, Mapping):
        raise RenderError(f"{where} must be a dict")
    pid = _need(panel, "id", str, where)
    layers = _need(panel, "layers", Mapping, where)
    click = _click(panel, where)
    stack = _stack(layers, images, where, size, list(maps))
    if click is not None:
        stack += _crosshair_svg(click[0], click[1], size)
    # An empty answer is an answer; only a missing one falls back to the run's response.
    response = payload["response"] if panel.get("response") is None else panel["response"]
    rows = [("Instruction", payload["instruction"]), ("Answer", response)]
    if click is not None:
        rows.append(("Click", f"x {click[0]:.1f}, y {click[1]:.1f} px (original image)"))
    if isinstance(panel.get("confidence"), str):
        rows.append(("Confidence", panel["confidence"]))
    notes = [n for n in ((click[2] if click else None), panel.get("click_note")) if n]
    shown = [n for n in maps if layers.get(n) is not None] + (["click"] if click else [])
    return (
        f'<section class="panel" id="panel-{_e(pid)}" data-panel="{_e(pid)}">'
        f"<h2>{_e(panel.get('title') or pid)}</h2>"
        f'<div class="stack">{stack}</div><p class="readout" aria-live="off"></p>'
        f'<dl class="text">{"".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)}</dl>'
        + "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
        + _legend(
            shown, maps, difference=False, click_inside=click is None or _inside(click[0], click[1], size)
        )
        + "</section>"
    )


def _difference(
    diff: Any, images: Mapping[str, bytes], size: tuple[int, int], maps: Mapping[str, Mapping[str, str]]
) -> str:
    where = "payload['difference']"
    if not isinstance(diff, Mapping):
        raise RenderError(f"{where} must be a dict or None")
    layers = _need(diff, "layers", Mapping, where)
    unchanged = [n for n in diff.get("unchanged") or () if n in maps]
    shown = [n for n in maps if layers.get(n) is not None or n in unchanged]
    stack = _stack(layers, images, where, size, list(maps))
    keys = []
    clicks = diff.get("clicks")
    if clicks is not None and not isinstance(clicks, Mapping):
        raise RenderError(f"{where}['clicks'] must be {{'adapter': click | None, 'base': click | None}}")
    for who, dashed in (("adapter", False), ("base", True)) if clicks is not None else ():
        click = _click({"click": clicks.get(who)}, f"{where}['clicks'][{who!r}]")
        if click is None:
            keys.append(f"<li>no {who} click</li>")
            continue
        stack += _crosshair_svg(click[0], click[1], size, who, dashed)
        svg = (
            '<svg class="swatch-click" viewBox="-24 -24 48 48" aria-hidden="true">'
            f"{_crosshair_body(True, dashed)}</svg>"
        )
        keys.append(f'<li data-key="{who}">{svg}{"dashed" if dashed else "solid"}: {who} click</li>')
    return (
        '<section class="panel difference" id="panel-difference" data-panel="difference">'
        f"<h2>{_e(diff.get('title') or 'Difference')}</h2>"
        f'<div class="stack">{stack}</div>'
        '<p class="readout" aria-live="off"></p>'
        '<p class="note-diff">Adapter minus base: red where the adapter looks more, blue where the base does.</p>'
        + _legend(shown, maps, difference=True, unchanged=unchanged)
        + (f'<ul class="legend click-key">{"".join(keys)}</ul>' if keys else "")
        + "</section>"
    )


def _charts(charts: Any) -> str:
    """``payload['charts']``: line charts (`lav.render.chart.line_chart`) with a title and a note."""
    if not charts:
        return ""
    from .chart import line_chart

    if not isinstance(charts, Sequence) or isinstance(charts, str):
        raise RenderError("payload['charts'] must be a list of charts")
    out = []
    for c in charts:
        try:
            series = [
                (str(s["name"]), str(s["colour"]), [float(v) for v in s["values"]]) for s in c["series"]
            ]
            svg = line_chart(series, [float(x) for x in c["x"]], str(c.get("x_label", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise RenderError(f"payload['charts'] entry is malformed ({exc})") from exc
        note = f"<p>{_e(c['note'])}</p>" if c.get("note") else ""
        out.append(
            f'<figure class="chart"><figcaption><b>{_e(c.get("title", ""))}</b></figcaption>{svg}{note}</figure>'
        )
    return f'<section class="charts">{"".join(out)}</section>'


def _meta(rows: Any) -> str:
    if not rows:
        return ""
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise RenderError("payload['meta'] must be a list of [label, value] pairs")
    body = []
    for row in rows:
        if isinstance(row, str) or not isinstance(row, Sequence) or len(row) != 2:
            raise RenderError(f"payload['meta'] row {row!r} is not a [label, value] pair")
        label, value = row
        text = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=_json_default)
        )
        body.append(f"<tr><th>{_e(label)}</th><td>{_e(text)}</td></tr>")
    return f'<table class="meta"><tbody>{"".join(body)}</tbody></table>'


def _maps(payload: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """name -> {"title", "style"} of the payload's maps, in drawing order (edge and focus by default)."""
    listed = payload.get("maps", _DEFAULT_MAPS)
    if not isinstance(listed, (list, tuple)):
        raise RenderError("payload['maps'] must be a list of {'name', 'title', 'style'}")
    out: dict[str, dict[str, str]] = {}
    for i, m in enumerate(listed):
        where = f"payload['maps'][{i}]"
        if not isinstance(m, Mapping):
            raise RenderError(f"{where} must be a dict")
        name = _need(m, "name", str, where)
        if not _MAP_NAME.match(name) or name in ("click", "screenshot") or name in out:
            raise RenderError(
                f"{where} name {name!r} must match [A-Za-z][A-Za-z0-9_-]*, be unique, "
                "and not be 'click' or 'screenshot'"
            )
        style = _need(m, "style", str, where)
        if style not in _MAP_STYLES:
            raise RenderError(f"{where} style {style!r} must be one of {_MAP_STYLES}")
        shown = m.get("shown", True)
        if not isinstance(shown, bool):
            raise RenderError(f"{where} shown must be true or false, got {shown!r}")
        out[name] = {"title": str(m.get("title") or name), "style": style, "shown": shown}
    return out


def _about(rows: Any, caveat: Any) -> str:
    """What each map is, one sentence each, and a caution about this model's maps (if any)."""
    out = ""
    if rows:
        if not isinstance(rows, Sequence) or isinstance(rows, str):
            raise RenderError("payload['about'] must be a list of [label, sentence] pairs")
        items = []
        for row in rows:
            if isinstance(row, str) or not isinstance(row, Sequence) or len(row) != 2:
                raise RenderError(f"payload['about'] row {row!r} is not a [label, sentence] pair")
            items.append(f"<li><b>{_e(row[0])}</b>: {_e(row[1])}</li>")
        out += f'<ul class="about">{"".join(items)}</ul>'
    if caveat:
        if not isinstance(caveat, str):
            raise RenderError(f"payload['caveat'] must be a string or None, got {type(caveat).__name__}")
        out += f'<p class="caveat" role="note">{_e(caveat)}</p>'
    return out


def _controls(present: set[str], maps: Mapping[str, Mapping[str, str]]) -> str:
    """Switches for every panel at once; a layer no panel has is shown disabled, not hidden."""
    boxes = []
    titles = {**{n: m["title"] for n, m in maps.items()}, "click": "Click"}
    for name, title in titles.items():
        # A map the payload does not show at first (shown: false) starts unticked, not disabled.
        state = (
            "disabled"
            if name not in present
            else ""
            if not maps.get(name, {}).get("shown", True)
            else "checked"
        )
        boxes.append(
            f'<label><input type="checkbox" data-toggle="{_e(name)}" {state}><span>{_e(title)}</span></label>'
        )
    return (
        '<div class="controls" role="group" aria-label="Layers (all panels)">'
        + "".join(boxes)
        + '<label>Map opacity <input type="range" min="0" max="100" value="100" data-opacity>'
        "<output data-opacity-value>100%</output></label></div>"
    )


def report_html(payload: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The report as one HTML page that opens offline.

    Args:
        payload: plain JSON data (also embedded in the page as ``<script id="lav-data">``)::

            {"title": str, "model": str, "adapter": str | None,
             "instruction": str, "response": str,          # response: default answer of a panel
             "image_size": [W, H],                          # original-image pixels
             "maps": [{"name": str, "title": str, "style": "edge" | "focus", "shown": bool}, ...],
                                    # optional: the map layers, in drawing order; default edge, focus;
                                    # shown (default true): false starts the map's switch unticked
             "about": [[label, sentence], ...],   # optional: what each map is, above the panels
             "caveat": str | None,                # optional: a caution about this model's maps
             "panels": [                                    # one or more, shown side by side
                {"id": str,             # "adapter", "base", ...; [A-Za-z0-9_.-], unique, not "difference"
                 "title": str,          # optional, defaults to id
                 "response": str,       # optional, defaults to payload["response"]
                 "click": {"x": float, "y": float, "note": str | None} | None,  # original-image px
                 "click_note": str | None,     # why there is no click, if none
                 "confidence": str | None,     # the click's digit confidence in words (optional)
                 "layers": {"screenshot": key, <map name>: key | None, ...}}, ...],
             "difference": {"title": str,  # optional; adapter minus base, diverging colours
                            "layers": {"screenshot": key, <map name>: key | None, ...},
                            "unchanged": [<map name>, ...],  # optional: maps whose difference is 0
                            "clicks": {"adapter": click | None, "base": click | None}}  # optional
                           | None,         # optional
             "meta": [[label, value], ...],  # optional; a table: layers used, convention, timings
             "charts": [{"title": str, "x": [float], "x_label": str, "note": str,
                         "series": [{"name": str, "colour": str, "values": [float]}]}]}
                                  # optional; line charts of values in [0, 1] (faithfulness curves)

        images: ``key -> bytes``: PNG (or JPEG for a screenshot). Map layers are RGBA PNGs at
            their screenshot's pixel size (`lav.render.edge_layer` etc.); a screenshot may be
            smaller than ``image_size`` but must keep its aspect ratio.

    Returns:
        The page. Panel ``<section>``s have ``id="panel-<id>"`` and ``data-panel="<id>"``; the
        difference panel is ``id="panel-difference"``. Checkboxes switch each map and the click in
        all panels at once, and a slider sets the maps' opacity.

    Raises:
        RenderError: a missing or malformed field, an unknown image key, a layer whose size does
            not match its screenshot, or a payload that is not plain JSON.
    """
    if not isinstance(payload, Mapping):
        raise RenderError("payload must be a dict; see report_html's docstring for the schema")
    title = _need(payload, "title", str, "payload")
    model = _need(payload, "model", str, "payload")
    adapter = payload.get("adapter")
    for key in ("instruction", "response"):
        _need(payload, key, str, "payload")
    size = _image_size(payload)
    panels = _need(payload, "panels", (list, tuple), "payload")
    if not panels:
        raise RenderError("payload['panels'] is empty; a report needs at least one panel")
    ids = [p.get("id") if isinstance(p, Mapping) else None for p in panels]
    for pid in ids:
        if not isinstance(pid, str) or not _PANEL_ID.match(pid) or pid == "difference":
            raise RenderError(
                f"panel id {pid!r} must match [A-Za-z0-9][A-Za-z0-9_.-]* and not be 'difference'"
            )
    if len(set(ids)) != len(ids):
        raise RenderError(f"panel ids {ids} repeat; give each panel its own id")

    maps = _maps(payload)
    body = "".join(_panel(p, i, payload, images, size, maps) for i, p in enumerate(panels))
    if payload.get("difference") is not None:
        body += _difference(payload["difference"], images, size, maps)
    compare = len(panels) > 1 or payload.get("difference") is not None
    present = {"click"} if any(p.get("click") is not None for p in panels) else set()
    for part in [*panels, payload.get("difference") or {}]:
        present.update(n for n in maps if (part.get("layers") or {}).get(n) is not None)
    script = _asset("report.js")
    # The hash lets exactly this script run under a policy that blocks every network request.
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    # One switch rule per map (names are [A-Za-z0-9_-], checked above).
    hide = "".join(f".hide-{n} .layer-{n}{{display:none}}" for n in maps)
    # Maps not shown at first are hidden before the script runs too (it keeps the class in step).
    off = [f"hide-{n}" for n, m in maps.items() if not m["shown"] and n in present]
    hidden = f' class="{" ".join(off)}"' if off else ""
    adapter_text = f"adapter <code>{_e(adapter)}</code>" if adapter else "no adapter"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_asset('report.css')}{hide}</style></head>\n"
        f'<body><main id="lav-report"{hidden}>'
        f'<header><h1>{_e(title)}</h1><p class="model">model <code>{_e(model)}</code> · {adapter_text}</p></header>'
        f"{_about(payload.get('about'), payload.get('caveat'))}{_controls(present, maps)}"
        f'<div class="panels{" compare" if compare else ""}">{body}</div>'
        f"{_charts(payload.get('charts'))}{_meta(payload.get('meta'))}</main>\n"
        f'<script type="application/json" id="lav-data">{_script_json(payload)}</script>\n'
        f"<script>{script}</script>\n</body></html>\n"
    )
