"""Guided annotation (``annotate serve --suggest MODEL``): the app as a few-label active-learning loop.

Items are the model's own windows (220 px at the model's pixel size) of the user's images. Before
anything is shown, a random set of whole fields (image files; the frames of one file are one field)
is fixed as the test set and stored in the database (:func:`phototox.training.suggest.choose_test_fields`);
its windows are served every ``test_every``-th vote and never enter the suggestion pool or training.
The other slots are random windows (at least 30%) or suggestions (uncertain under the current head,
diverse in head-feature space): :mod:`phototox.training.suggest`. The current head is the base model's until
both labels have two concordant windows, then a logistic head refitted on the votes so far.
"""

from __future__ import annotations

import io
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox.apps.annotate.db import AnnotationDB, Annotator, Item
from phototox.errors import PhototoxError

SCHEMA = """
CREATE TABLE IF NOT EXISTS guided_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS suggestions (
    annotator_id INTEGER NOT NULL, slot INTEGER NOT NULL, item_id INTEGER NOT NULL,
    kind TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (annotator_id, slot)
);
"""
DECIDED = ("healthy", "sick")


# -- settings stored with the votes -------------------------------------------------------------
def write_settings(db: AnnotationDB, settings: dict) -> None:
    read_settings(db)  # creates the tables
    with db.transaction() as con:
        for key, value in settings.items():
            con.execute("INSERT OR REPLACE INTO guided_settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def read_settings(db: AnnotationDB) -> dict:
    """The guided session's settings ({} for a plain annotation database)."""
    with db.connect() as con:
        con.executescript(SCHEMA)
        return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM guided_settings")}


# -- items: the model's windows ---------------------------------------------------------------
def guided_items(inputs: list[str], window: int, factor: float, frames: int) -> tuple[list[tuple], dict]:
    """Item rows (one per non-overlapping model window and run of frames) and per-field metadata."""
    from phototox.apps.annotate.items import _sources
    from phototox.io.images import read_frames
    from phototox.io.manifest import read_manifest
    from phototox.trust.domain_windows import window_grid

    size = max(1, round(window / factor))
    rows, fields = [], {}
    extra: dict[str, dict] = {}
    for text in inputs:  # batch columns (replicate, dish, plate ...) for the audit of the annotations
        if Path(text).suffix.lower() == ".csv":
            for sample in read_manifest(Path(text), require_labels=False):
                columns = {k: str(v) for k, v in sample.extra.items() if k not in ("path", "label", "control")}
                extra[str(Path(sample.path).resolve())] = {"replicate": sample.replicate, **columns}
    for source in _sources(inputs):
        path = str(Path(source["path"]).resolve())
        stack = read_frames(path, min_size=size)
        first, last = source["frames"] or (0, stack.shape[0] - 1)
        last = min(last, stack.shape[0] - 1)
        fields[path] = {"group": source["group"], "control": bool(source["control"]), **extra.get(path, {})}
        for start in range(first, last + 1, frames):
            end = min(start + frames - 1, last)
            for y, x in window_grid((stack.shape[1], stack.shape[2]), size, max_windows=10**6):
                rows.append((path, start, end, y, x, size, source["group"], int(source["control"])))
    return rows, fields


def item_features(predictor, items: list[Item], factor: float) -> np.ndarray:
    """Head features of each item's first frame at the model's scale (:func:`phototox.training.adapt.head_features`)."""
    from phototox.io.images import read_frames
    from phototox.training.adapt import head_features
    from phototox.trust.pixelsize import to_model_scale

    w = predictor.window
    out = np.zeros((len(items), int(predictor.model.module.fc.in_features)))
    by_frame: dict[tuple[str, int], list[int]] = {}
    for k, item in enumerate(items):
        by_frame.setdefault((item.path, item.first_frame), []).append(k)
    stacks: dict[str, np.ndarray] = {}
    for (path, frame), ks in by_frame.items():
        if path not in stacks:
            stacks = {path: read_frames(path, min_size=1)}
        scaled = to_model_scale(stacks[path][frame], factor, w, path)
        h, wd = scaled.shape
        positions = [(min(round(items[k].y * factor), h - w), min(round(items[k].x * factor), wd - w)) for k in ks]
        out[ks] = head_features(predictor, scaled, positions)
    return out


# -- what the annotator sees besides the window ---------------------------------------------------
CONTEXT_SIDE = 384
SCALE_BAR_UM = 50.0


def context_png(item: Item, um_per_px: float | None) -> bytes:
    """The item's whole field (first frame, at most 384 px a side) with the window outlined in
    yellow and, when the pixel size is known, a white 50 um scale bar on black at the bottom left
    (the page's caption says its length)."""

    import imageio.v3 as iio
    from skimage.transform import resize

    from phototox.apps.annotate.items import _stack
    from phototox.io.images import to_display_uint8

    frame = _stack(item.path)[item.first_frame]
    zoom = min(1.0, CONTEXT_SIDE / max(frame.shape))
    height, width = max(1, round(frame.shape[0] * zoom)), max(1, round(frame.shape[1] * zoom))
    grey = resize(to_display_uint8(frame), (height, width), order=1, preserve_range=True, anti_aliasing=zoom < 1)
    picture = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    y0, x0 = round(item.y * zoom), round(item.x * zoom)
    y1, x1 = min(height, round((item.y + item.size) * zoom)), min(width, round((item.x + item.size) * zoom))
    yellow = (255, 220, 0)
    picture[y0 : y0 + 2, x0:x1] = picture[max(y0, y1 - 2) : y1, x0:x1] = yellow
    picture[y0:y1, x0 : x0 + 2] = picture[y0:y1, max(x0, x1 - 2) : x1] = yellow
    if um_per_px:
        length = max(1, round(SCALE_BAR_UM / um_per_px * zoom))
        bottom = height - 6
        picture[max(0, bottom - 10) : bottom + 4, 2 : min(width, 12 + length)] = 0
        picture[max(0, bottom - 4) : bottom, 6 : min(width, 6 + length)] = 255
    buffer = io.BytesIO()
    iio.imwrite(buffer, picture, extension=".png")
    return buffer.getvalue()


# -- labels from votes ----------------------------------------------------------------------------
def votes_by_item(db: AnnotationDB) -> dict[int, dict[int, str]]:
    """Each annotator's latest label per item (skips ignored): {item: {annotator: label}}."""
    out: dict[int, dict[int, str]] = {}
    for (item, who), label in db.latest_labels().items():
        out.setdefault(item, {})[who] = label
    return out


def concordant(labels: dict[int, str]) -> str | None:
    """``healthy``/``sick`` when every vote says it; None for unsure or disagreement."""
    values = set(labels.values())
    return next(iter(values)) if len(values) == 1 and values <= set(DECIDED) else None


def label_summary(by_item: dict[int, dict[int, str]], items: list[int]) -> dict:
    """Counts of the items' outcomes: concordant per label, disagreed, unsure-only."""
    out = {"healthy": 0, "sick": 0, "disagreed": 0, "unsure": 0}
    for item in items:
        labels = by_item.get(item, {})
        if not labels:
            continue
        agreed = concordant(labels)
        if agreed:
            out[agreed] += 1
        elif len(set(labels.values()) & set(DECIDED)) == 2:
            out["disagreed"] += 1
        else:
            out["unsure"] += 1
    return out


# -- the serving state ------------------------------------------------------------------------------
@dataclass
class GuidedState:
    """What the server needs to choose items: features, the base head's P(sick), the test fields."""

    settings: dict
    item_ids: np.ndarray
    features: np.ndarray
    base_p: np.ndarray
    test: np.ndarray  # bool per item
    index: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {int(i): k for k, i in enumerate(self.item_ids)}


def load_guided_model(spec: str, device: str = "cpu"):
    from phototox.maps.inference import Predictor

    return Predictor.from_spec(spec, device)


def prepare(
    db: AnnotationDB,
    inputs: list[str],
    model_spec: str,
    pixel_size_um: float | None,
    test_fraction: float,
    seed: int,
    frames: int,
    test_every: int,
    random_share: float,
) -> GuidedState:
    """Add the windows as items, fix the test fields (once, before any suggestion), compute features."""
    from phototox.training.adapt import base_p_sick
    from phototox.training.suggest import MIN_RANDOM_SHARE, choose_test_fields
    from phototox.trust.pixelsize import model_pixel_size, scale_factor

    if random_share < MIN_RANDOM_SHARE or random_share > 1:
        raise PhototoxError(f"--random-share must lie in [{MIN_RANDOM_SHARE}, 1], got {random_share}")
    predictor = load_guided_model(model_spec)
    model_um = model_pixel_size(predictor.model.meta)
    factor = scale_factor(pixel_size_um, model_um)
    rows, fields = guided_items(inputs, predictor.window, factor, frames)
    if not rows:
        raise PhototoxError(f"no image as large as one model window in {' '.join(inputs)}: nothing to annotate")
    settings = read_settings(db)
    if settings and settings.get("model") != model_spec:
        raise PhototoxError(
            f"{db.path}: this guided session used --suggest {settings.get('model')}; "
            f"start a new database for --suggest {model_spec}"
        )
    if not settings and db.items():
        raise PhototoxError(
            f"{db.path}: holds a plain annotation session (no test fields); use a new --db for --suggest"
        )
    db.add_items(rows)
    if not settings:
        try:
            test_fields = choose_test_fields(sorted(fields), test_fraction, seed)
        except ValueError as exc:
            raise PhototoxError(f"{' '.join(inputs)}: {exc}") from None
        settings = {
            "model": model_spec,
            "pixel_size_um": pixel_size_um,
            "image_um_per_px": pixel_size_um or model_um,
            "scale_factor": factor,
            "test_fields": test_fields,
            "test_fraction": test_fraction,
            "seed": seed,
            "test_every": test_every,
            "random_share": random_share,
            "fields": fields,
            "fixed_at": time.time(),
        }
        write_settings(db, settings)
    wanted = {(r[0], r[1], r[3], r[4], r[5]) for r in rows}
    items = [i for i in db.items() if (i.path, i.first_frame, i.y, i.x, i.size) in wanted]
    features = item_features(predictor, items, factor)
    test_set = set(settings["test_fields"])
    return GuidedState(
        settings,
        np.array([i.id for i in items]),
        features,
        base_p_sick(predictor.model.module, features),
        np.array([i.path in test_set for i in items]),
    )


def current_p(state: GuidedState, by_item: dict[int, dict[int, str]]) -> np.ndarray:
    """P(sick) of every item under the head fitted on the concordant training votes so far (else the base's)."""
    from phototox.training.adapt import fit_head

    ks, ys = [], []
    for item, labels in by_item.items():
        k = state.index.get(item)
        agreed = concordant(labels)
        if k is not None and agreed and not state.test[k]:
            ks.append(k)
            ys.append(DECIDED.index(agreed))
    if min(ys.count(0), ys.count(1)) < 2:
        return state.base_p
    return fit_head(state.features[ks], np.array(ys)).p_sick(state.features)


def next_guided_item(db: AnnotationDB, annotator: Annotator, state: GuidedState, overlap_every: int) -> tuple:
    """(item, kind) to show next: a stored choice for this slot if still unvoted, else a new one."""
    from phototox.training.suggest import slot_kind, suggest

    slot = db.count_votes(annotator.id)
    seen = db.seen_items(annotator.id)
    with db.connect() as con:
        row = con.execute(
            "SELECT item_id, kind FROM suggestions WHERE annotator_id = ? AND slot = ?", (annotator.id, slot)
        ).fetchone()
    if row and row[0] not in seen:
        return db.item(row[0]), row[1]
    rng = random.Random(f"{state.settings['seed']}:{annotator.id}:{slot}")
    by_item = votes_by_item(db)
    labelled = {i for i, v in by_item.items() if v}
    ids = state.item_ids
    unseen = np.array([int(i) not in seen for i in ids])
    fresh = unseen & np.array([int(i) not in labelled for i in ids])
    kind = slot_kind(slot, state.settings["test_every"], state.settings["random_share"])
    chosen = None
    if overlap_every > 0 and (slot + 1) % overlap_every == 0:
        overlap_pool = sorted((db.items_scored_by_others(annotator.id) - seen) & set(state.index))
        if overlap_pool:
            chosen, kind = rng.choice(overlap_pool), "overlap"
    if chosen is None:
        test = state.test if kind == "test" else ~state.test
        pool_mask = test & fresh
        if not pool_mask.any():
            pool_mask = test & unseen
        if not pool_mask.any():  # this side is done: take the other one
            kind = "random" if kind == "test" else "test"
            test = ~test
            pool_mask = (test & fresh) if (test & fresh).any() else (test & unseen)
        if not pool_mask.any():
            return None, ""
        pool = np.flatnonzero(pool_mask)
        if kind == "suggested":
            train_labelled = np.array(
                [state.index[i] for i in labelled if i in state.index and not state.test[state.index[i]]], dtype=int
            )
            k = suggest(state.features, current_p(state, by_item), pool, train_labelled)
        else:
            k = int(pool[rng.randrange(len(pool))])
        chosen = int(ids[k])
    with db.transaction() as con:
        con.execute(
            "INSERT OR REPLACE INTO suggestions (annotator_id, slot, item_id, kind, created) VALUES (?, ?, ?, ?, ?)",
            (annotator.id, slot, chosen, kind, time.time()),
        )
    return db.item(chosen), kind
