"""`evaluate`: run a grounding benchmark through a `Visualizer` and score every sample, resumably.

One pass over the dataset in batches (`Visualizer.analyze_many`): each sample's answer, click and
maps become a record (`records.record`), appended durably to ``samples.jsonl`` as its batch
completes; the summary (`stats.summarize`) and the report are computed from the records alone.

- A sample whose image is missing or unreadable, or that raises a `lav.LavError`, is recorded as an
  error with the reason and the run goes on (images are checked before batching, and a batch that
  fails is retried item by item so one bad sample does not sink the others).
- ``shard=(i, n)`` runs the samples whose id hashes to part ``i`` of ``n`` (`shard_of`); `merge`
  joins the parts' folders into one (``lav eval --shard``, ``torchrun``: `lav.eval.distributed`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, LavError
from ..faithful.options import CheckOptions
from ..faithful.summary import summarize as check_summary
from ..files import read_json
from ..inputs import load_image
from ..livefolder import OutputFolder
from ..options import AnalysisOptions, LayerArg, flag, options_from
from . import log
from .datasets import Dataset, Sample
from .fingerprint import images_digest, model_settings
from .layout import SAMPLES_DIR, THUMBS_DIR, safe_id
from .layout import SHARDS_DIR as SHARDS_DIR  # re-exported with shard_folder (tests)
from .layout import shard_folder as shard_folder
from .progress import Progress
from .records import NO_CLICK_TARGETS, error_record, record, score
from .replay import agreement_summary, strip_end
from .stats import summarize
from .taxonomy import other_elements

if TYPE_CHECKING:
    from ..analysis import Visualizer
    from ..result import Result
    from .responses import Matched, Responses


@dataclass
class Evaluation:
    """What `evaluate` gives back: the records in dataset order, the summary, the folder (if any)."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path | None
    #: Samples of this run already done in ``out`` when it started (a resumed run), 0 for a fresh one.
    resumed: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.summary["accuracy"]


def shard_of(sample_id: str, parts: int) -> int:
    """The part (0..parts-1) sample ``sample_id`` belongs to: a hash of the id, so the partition
    does not depend on the order, the limit or the machine."""
    digest = hashlib.sha256(sample_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % parts


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"I/N"`` (or ``(I, N)``) -> ``(I, N)`` with 0 <= I < N; None stays None."""
    if text is None:
        return None
    if isinstance(text, str):
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise InputError(f"--shard must be I/N such as 0/4, got {text!r}") from None
    else:
        i, n = text
    if not (n >= 1 and 0 <= i < n):
        raise InputError(f"shard {i}/{n}: need N >= 1 and 0 <= I < N (parts are numbered from 0)")
    return i, n


def _fingerprint(samples: Sequence[Sample]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps([s.id, s.instruction, s.target, s.box, s.polygon], default=str).encode("utf-8"))
    return h.hexdigest()[:16]


def _layer_text(value: Any) -> Any:
    if isinstance(value, (str, int, dict)) or value is None:
        return value
    return [v if isinstance(v, str) else int(v) for v in value]


def settings(viz: Visualizer, dataset: Dataset, options: dict[str, Any]) -> dict[str, Any]:
    """What a folder's records depend on, by content (`lav.eval.fingerprint`): compared on resume
    (``run.json``)."""
    return {
        "model": viz.model_name,
        "adapter": viz.adapter_name,
        "family": viz.parts.family,
        "dataset": dataset.name,
        "format": dataset.format,
        "samples": len(dataset.samples),
        "fingerprint": _fingerprint(dataset.samples),
        "images_sha256": images_digest(s.image for s in dataset.samples),
        "group_fields": list(dataset.group_fields),
        **model_settings(viz),
        **{k: _layer_text(v) for k, v in options.items()},
    }


def _check_ids(samples: Sequence[Sample]) -> None:
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise InputError(f"sample id {s.id!r} occurs twice in the dataset; ids must be unique to resume")
        seen.add(s.id)


def evaluate(
    viz: Visualizer,
    dataset: Dataset,
    out: str | Path | None = None,
    *,
    batch_size: int = 8,
    edge_layers: LayerArg = (-2, -1),
    focus_layers: LayerArg = "all",
    compare_base: bool = False,
    max_new_tokens: int | None = None,
    coords: str | None = None,
    system: str | None = None,
    template: str | None = None,
    save_maps: bool = False,
    shard: tuple[int, int] | str | None = None,
    progress: bool | None = None,
    maps: Sequence[str] | None = None,
    refusals: str = "official",
    options: AnalysisOptions | None = None,
    responses: Responses | None = None,
    checks: CheckOptions | None = None,
) -> Evaluation:
    """Run ``dataset`` through ``viz`` and score it; with ``out``, resumably into that folder.

    ``out`` gets ``run.json``, ``samples.jsonl`` (a record per sample as it completes, see
    `lav.eval.records`), ``summary.json``, ``report.html`` and, with ``save_maps``, each sample's
    `Result` folder under ``samples/``. Called again with the same arguments on a folder of an
    interrupted run, it runs only the samples not yet recorded and ends with the same summary.
    ``focus_layers`` defaults to every full-attention decoder layer (the per-layer curves);
    ``coords``: read answers in this convention (default: the model family's).
    ``maps``: more map methods (`lav.methods`) to score beside ``edge`` and ``focus`` (always run):
    each gets pointing game and mass in box per sample and in the summary's ``methods``.
    ``progress``: a bar on stderr (None: when stderr is a terminal, else a line every few samples).
    ``refusals``: ``"official"`` scores refusal samples (OSWorld-G), ``"excluded"`` leaves them out
    of the summary (the records are the same either way, so it is not a setting of the folder).
    ``options``: the analysis options as one `lav.AnalysisOptions` instead of the keywords (its
    ``focus_layers`` is then the options', -1 unless set).
    ``responses``: answers generated elsewhere (`lav.eval.responses.read_responses`), matched to the
    samples by id: no generation, each batch one teacher-forced forward of the given answers, and
    per sample where transformers' greedy choice differs (``agreement``). A sample the file does not
    answer is an error (inside n). Not with ``compare_base``: the file holds one model's answers.
    ``checks``: does each map explain the click (`lav.faithful.CheckOptions`: deletion / insertion
    curves, the zoom test); each record and the summary get ``faithfulness`` / ``zoom``.
    """
    opts = options_from(
        options,
        {
            "edge_layers": edge_layers,
            "focus_layers": focus_layers,
            "compare_base": compare_base,
            "max_new_tokens": max_new_tokens,
            "coords": coords,
            "system": system,
            "template": template,
            "maps": maps,
        },
        defaults={"focus_layers": "all"},
    )
    shard = parse_shard(shard)
    if responses is not None and opts.compare_base:
        raise InputError(COMPARE_BASE_REPLAY)
    names, extra_maps = eval_maps(viz, opts.maps)
    unused = sorted(opts.given())
    if unused:
        raise InputError(f"lav eval does not take {unused[0]}: it runs no map method that needs it")
    from ..models import resolve_layers

    # A layer the model lacks would fail every sample alike: one line now, before any sample runs.
    resolve_layers(opts.edge_layers, len(viz.parts.vision_attention), "vision blocks")
    resolve_layers(opts.focus_layers, len(viz.parts.decoder_attention), "full-attention decoder layers")
    samples = list(dataset.samples)
    _check_ids(samples)
    if shard is not None:
        samples = [s for s in samples if shard_of(s.id, shard[1]) == shard[0]]
    # The options as run.json records them (the record a resume must match, so its keys stay).
    recorded = {
        "edge_layers": opts.edge_layers,
        "focus_layers": opts.focus_layers,
        "compare_base": opts.compare_base,
        "max_new_tokens": opts.max_new_tokens,
        "coords": opts.coords,
        "system": opts.system,
        "template": opts.template,
        "maps": extra_maps,
        "shard": None if shard is None else list(shard),
    }
    matched = None
    if responses is not None:
        # Matched against the whole dataset (every shard alike), and pinned in run.json by content.
        matched = responses.match(dataset.samples)
        recorded["responses"] = responses.describe(matched)
    if checks is not None:
        recorded["checks"] = checks.to_dict()  # only when asked, so older folders still resume
    if viz.preset is not None or viz.image_pixels is not None:
        # Recorded only when set, so folders of runs without a preset still resume.
        recorded["preset"] = None if viz.preset is None else viz.preset.name
        recorded["image_pixels"] = None if viz.image_pixels is None else list(viz.image_pixels)
    if out is not None and shard is not None and Path(out) == shard_folder(Path(out).parent.parent, shard[0]):
        # The layout `merge` joins: the run's folder lists its shards before they write.
        claim_shard(Path(out).parent.parent, shard[0])
    folder = None if out is None else OutputFolder(out)  # checked and locked for the whole run
    try:
        return _evaluate(
            viz, dataset, folder, samples, opts, recorded, batch_size, save_maps, progress, names, refusals,
            matched, checks,
        )  # fmt: skip
    finally:
        if folder is not None:
            folder.close()


def _evaluate(
    viz, dataset, folder, samples, opts, options, batch_size, save_maps, progress, names, refusals, matched,
    checks=None,
) -> Evaluation:  # fmt: skip
    extra_maps = options["maps"]
    if folder is not None:
        # The batch size decides padding, which can change an answer: a resume keeps it.
        log.check_settings(folder, {**settings(viz, dataset, options), "batch_size": batch_size})
    # The default maps run too (the summary draws edge and focus); each item carries the prompt.
    run_opts = opts.replace(maps=tuple(names), coords=None, system=None, template=None)
    analyze: Callable[[list[dict[str, Any]]], list[Result]] = lambda items: viz.analyze_many(  # noqa: E731
        items, batch_size=batch_size, options=run_opts
    )
    extra = {"coords": opts.coords, "system": opts.system, "template": opts.template}
    sink = _Sink(folder, save_maps)
    # Every sample of the dataset marks an element of its screenshot (shards included).
    elements = other_elements(dataset.samples)
    resumed = sum(s.id in sink.done for s in samples)
    try:
        bar = Progress(len(samples), sink.records, enabled=progress)
        # Batches are fixed slices of the sample list, so a resumed run batches (and pads) the
        # remaining samples as the uninterrupted run did.
        for start in range(0, len(samples), batch_size):
            batch = [s for s in samples[start : start + batch_size] if s.id not in sink.done]
            if not batch:
                continue
            by_id = _run_batch(viz, batch, analyze, extra, extra_maps, elements, matched, checks, opts)
            done = [by_id[s.id] for s in batch]
            sink.add(done)
            bar.update(done)
        bar.close()
    finally:
        sink.close()
    order = {s.id: n for n, s in enumerate(samples)}
    records = sorted((r for r in sink.records if r["id"] in order), key=lambda r: order[r["id"]])
    summary = _summary(records, viz.model_name, viz.adapter_name, dataset, options, refusals)
    if folder is not None:
        write_outputs(folder, records, summary, resumed=resumed)
    return Evaluation(unique_records(records)[0], summary, None if folder is None else folder.path, resumed)


def eval_maps(viz: Visualizer, maps: Sequence[str] | str | None) -> tuple[list[str], list[str]]:
    """What an evaluation runs and what it scores as extra methods: the model's default maps (edge,
    focus, ...) plus the named ones (checked), and the named ones that are not defaults."""
    from ..methods import chosen, unoffered, with_defaults

    run = with_defaults(maps, viz.parts)
    for name, missing in unoffered(run, offered=()):
        hint = (
            "; the summary ranks every head by pointing game instead (summary.json 'heads', and "
            "lav run --head-ranking)"
            if "focus_heads" in missing
            else ""
        )
        raise InputError(f"lav eval does not take {name} (it needs {', '.join(map(flag, missing))}){hint}")
    defaults = {m.name for m in chosen(None, viz.parts)}
    return run, [n for n in run if n not in defaults]


def _run_batch(
    viz: Visualizer,
    batch: Sequence[Sample],
    analyze,
    extra,
    extra_maps: Sequence[str],
    elements: Mapping[str, Sequence[Sample]] | None = None,
    matched: Matched | None = None,
    checks: CheckOptions | None = None,
    opts: AnalysisOptions | None = None,
) -> dict[str, dict[str, Any]]:
    """Records of one batch by id: errors for unreadable images, else the analysis, retried item by
    item when the batch as a whole raises a `LavError`; ``extra_maps`` scored beside edge and focus;
    ``elements``: the other samples of each sample's screenshot (`lav.eval.taxonomy`); ``matched``:
    given answers to force (`lav.eval.responses`); a sample without one is an error."""
    out: dict[str, dict[str, Any]] = {}
    ready: list[tuple[Sample, Any]] = []
    ends = [] if matched is None else _end_texts(viz)
    for s in batch:
        if matched is not None and s.id not in matched.answers:
            out[s.id] = error_record(s, matched.missing[s.id])
            continue
        try:
            ready.append((s, load_image(s.image, max_pixels=viz.max_image_pixels)))
        except LavError as exc:
            out[s.id] = error_record(s, _one_line(exc))
    if not ready:
        return out
    items = [{"image": img, "instruction": s.instruction, **extra} for s, img in ready]
    if matched is not None:
        for (s, _), item in zip(ready, items, strict=True):
            item["response"] = strip_end(matched.answers[s.id], ends)
    try:
        results = analyze(items)
        pairs = list(zip(ready, results, strict=True))
    except LavError as failed:
        finished = getattr(failed, "finished", {})  # a BatchError keeps what finished before it
        pairs = []
        for n, ((s, img), item) in enumerate(zip(ready, items, strict=True)):
            if n in finished:
                pairs.append(((s, img), finished[n]))
                continue
            try:
                pairs.append(((s, img), analyze([item])[0]))
            except LavError as exc:
                out[s.id] = error_record(s, _one_line(exc))
    for (s, _), res in pairs:
        out[s.id] = record(s, res, extra_maps, (elements or {}).get(s.id, ()))
        if checks is not None:
            _add_checks(viz, s, res, out[s.id], checks, opts)
        out[s.id]["_result"] = res
    return out


#: Why ``--compare-base`` and ``--responses`` do not go together (one line, for the CLI too).
COMPARE_BASE_REPLAY = (
    "--compare-base with --responses: the file holds one model's answers, so base and adapter would "
    "be scored on the same clicks; replay each model's own answers in a run of its own (with "
    "--adapter, and without)"
)


def _end_texts(viz: Visualizer) -> list[str]:
    """The text of the model's end-of-turn tokens, which some harnesses leave in their answers."""
    tok = viz.processor.tokenizer
    return [tok.convert_ids_to_tokens(i) for i in sorted(viz.end_ids())]


def _add_checks(viz, sample: Sample, res, rec: dict[str, Any], checks: CheckOptions, opts) -> None:
    """``rec`` with the sample's faithfulness / zoom checks (against its target box, by the official rule)."""
    from ..faithful.measure import record_checks

    size = res.image_size
    hit = None
    if sample.target not in NO_CLICK_TARGETS and sample.box is not None:
        hit = lambda x, y: score(sample, x, y, False, size)  # noqa: E731
    fields = record_checks(viz, res, checks, opts, hit)
    base = fields.pop("base")
    rec.update({k: v for k, v in fields.items() if v is not None})
    if base and rec.get("base") is not None:
        rec["base"].update(base)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class _Sink:
    """Where finished records go: memory, and with a folder the durable log, thumbnails and maps."""

    def __init__(self, folder: OutputFolder | None, save_maps: bool):
        self.folder = folder
        self.save_maps = save_maps
        self.log = None if folder is None else log.SampleLog(folder)
        self.records: list[dict[str, Any]] = [] if self.log is None else self.log.records
        self.done = set() if self.log is None else self.log.done

    def add(self, recs: Sequence[dict[str, Any]]) -> None:
        clean = []
        thumbs: dict[str, bytes] = {}
        results = [rec.pop("_result", None) for rec in recs]
        if self.folder is not None and self.save_maps:
            # One manifest update lists the batch's sample folders before anything is written there.
            chosen = [(rec, res) for rec, res in zip(recs, results, strict=True) if res is not None]
            folders = self.folder.nested_many([f"{SAMPLES_DIR}/{safe_id(rec['id'])}" for rec, _ in chosen])
            for (_, res), path in zip(chosen, folders, strict=True):
                res.save(path)
        for rec, res in zip(recs, results, strict=True):
            if self.folder is not None and res is not None and _in_gallery(rec):
                # Pictures first: a record in the log promises its thumbnail and maps are there.
                from .report import thumbnail_png

                thumbs[f"{THUMBS_DIR}/{safe_id(rec['id'])}.png"] = thumbnail_png(res, rec)
            clean.append(rec)
        if thumbs:
            # One manifest update for the batch's thumbnails (the manifest grows with the run).
            self.folder.write_many(thumbs)
        if self.log is not None:
            self.log.append(clean)
        else:
            self.records.extend(clean)
            self.done.update(r["id"] for r in clean)

    def close(self) -> None:
        pass


def _in_gallery(rec: dict[str, Any]) -> bool:
    """Failures and flips get a thumbnail for the report's gallery."""
    base = rec.get("base")
    return not rec["correct"] or (base is not None and bool(base["correct"]) != bool(rec["correct"]))


def unique_records(records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """``records`` with each sample id once (its first record), and how many repeats were dropped.

    A log lav wrote holds every id once; this guards the numbers against one that does not.
    """
    seen: set[str] = set()
    kept = []
    for rec in records:
        if rec["id"] not in seen:
            seen.add(rec["id"])
            kept.append(rec)
    return kept, len(records) - len(kept)


def _summary(
    records, model, adapter, dataset: Dataset, options, refusals: str = "official"
) -> dict[str, Any]:
    records, repeats = unique_records(records)
    notes = list(dataset.notes)
    if repeats:
        notes.append(f"{repeats} records repeated a sample id already recorded; each sample was counted once")
    summary = {
        "model": model,
        "adapter": adapter,
        "dataset": dataset.name,
        "format": dataset.format,
        "notes": notes + size_notes(records),
    }
    summary.update(summarize(records, dataset.group_fields, format=dataset.format, refusals=refusals))
    summary.update(check_summary(records))
    summary["options"] = {k: _layer_text(v) for k, v in options.items() if k not in ("shard", "responses")}
    if options.get("responses") is not None:
        # Which engine's answers were scored, and how far transformers would have written them.
        summary["responses"] = options["responses"]
        summary["agreement"] = agreement_summary(records)
    return summary


def write_outputs(
    folder: OutputFolder, records: Sequence[dict[str, Any]], summary: dict[str, Any], resumed: int = 0
) -> None:
    """``summary.json`` and ``report.html`` of a finished folder. ``resumed``: how many samples the
    run found done when it started; the report says so (the summary, a function of the records
    alone, does not change with it)."""
    from .report import eval_page

    records = unique_records(records)[0]
    folder.write_text(log.SUMMARY_FILE, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    folder.write_text(log.REPORT_FILE, eval_page(summary, records, folder.path, resumed=resumed))


# ---------------------------------------------------------------------------------------------
# Parts of one run (--shard I/N, torchrun ranks)


def claim_shard(out: str | Path, index: int) -> Path:
    """List ``<out>/shards/rank-<index>`` in ``out``'s manifest before the shard writes there, so the
    merged folder holds nothing lav did not list; returns the shard's folder."""
    with OutputFolder(out, wait=True) as parent:
        return parent.nested(f"{SHARDS_DIR}/rank-{index}")


def size_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    """One note when screenshots are stored at another size than their boxes were annotated on."""
    other = [
        r
        for r in records
        if r.get("annotated_size") and r.get("image_size") and r["annotated_size"] != r["image_size"]
    ]
    if not other:
        return []
    first = other[0]
    rule = (
        "boxes divided by the annotated size, clicks taken as a fraction of the stored image, as the "
        "official script does"
        if first.get("size_rule") == "annotated"
        else "boxes divided by the stored image's size, as the official script does (it opens the file)"
    )
    (aw, ah), (sw, sh) = first["annotated_size"], first["image_size"]
    return [
        f"{len(other)} image(s) stored at another size than annotated (e.g. {first['id']!r}: annotated "
        f"{aw}x{ah}, stored {sw}x{sh}): {rule}"
    ]


def merge(
    out: str | Path, dataset: Dataset, parts: int, require_all: bool = True, refusals: str = "official"
) -> Evaluation | None:
    """Join the folders of a run's ``parts`` shards (``<out>/shards/rank-I``) into ``out``.

    Every shard must hold a finished summary and exactly its own samples; with ``require_all``
    False, returns None while some shard is unfinished (the last part to finish merges).
    The merged ``samples.jsonl`` is in dataset order and its summary equals a one-process run's.
    """
    with OutputFolder(out, wait=True) as folder:
        out = folder.path
        folders = [shard_folder(out, i) for i in range(parts)]
        unfinished = [f for f in folders if not (f / log.SUMMARY_FILE).is_file()]
        if unfinished:
            if require_all:
                raise LavError(f"cannot merge: {unfinished[0]} has not finished; run its shard first")
            return None
        runs = [read_json(f / log.RUN_FILE, "shard settings", fix="run that shard again") for f in folders]
        base_settings = {k: v for k, v in runs[0].items() if k != "shard"}
        for f, run in zip(folders, runs, strict=True):
            if {k: v for k, v in run.items() if k != "shard"} != base_settings:
                raise LavError(f"{f} was made with other settings than {folders[0]}; rerun it")
        by_id: dict[str, dict[str, Any]] = {}
        for f in folders:
            for rec in log.read_records(f / log.SAMPLES_FILE):
                if rec["id"] in by_id:
                    raise LavError(f"sample {rec['id']!r} is in two shards; rerun with one --shard N")
                by_id[rec["id"]] = rec
        missing = [s.id for s in dataset.samples if s.id not in by_id]
        if missing:
            raise LavError(f"cannot merge: {len(missing)} samples are in no shard (e.g. {missing[0]!r})")
        records = [by_id[s.id] for s in dataset.samples]
        options = {k: base_settings.get(k) for k in _OPTION_KEYS}
        if "responses" in base_settings:
            options["responses"] = base_settings["responses"]
        summary = _summary(
            records, base_settings["model"], base_settings["adapter"], dataset, options, refusals
        )
        settings_all = {**base_settings, "parts": parts}
        folder.write_text(log.RUN_FILE, json.dumps(settings_all, indent=2) + "\n")
        folder.write_text(log.SAMPLES_FILE, "".join(log.dumps(r) + "\n" for r in records))
        write_outputs(folder, records, summary)
        return Evaluation(records, summary, out)


_OPTION_KEYS = (
    "maps",
    "edge_layers",
    "focus_layers",
    "compare_base",
    "max_new_tokens",
    "coords",
    "system",
    "template",
)
