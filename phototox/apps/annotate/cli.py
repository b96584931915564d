"""``phototox annotate serve|report|export``."""

from __future__ import annotations

from pathlib import Path

from phototox.apps.annotate.db import AnnotationDB
from phototox.apps.httpserve import serve_until_interrupted
from phototox.errors import PhototoxError


def register(sub) -> None:
    p = sub.add_parser("annotate", help="expert annotation web app, agreement report, training export")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    s = actions.add_parser("serve", help="serve the annotation web app")
    s.add_argument("inputs", nargs="+", help="images, folders or a manifest CSV (group, control columns)")
    s.add_argument("--db", required=True, help="SQLite file holding items, annotators and votes")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8780, help="TCP port (default 8780)")
    s.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this name in the Host header (when --host is not loopback)",
    )
    s.add_argument("--crop", type=int, default=256, help="side of the square crops shown (px)")
    s.add_argument("--frames", type=int, default=10, help="frames per item of a time-lapse (the paper: 10)")
    s.add_argument("--overlap-every", type=int, default=5, help="every Nth item is one scored by someone else")
    s.add_argument(
        "--seed", type=int, default=0, help="seed of the random order in which each annotator sees the items"
    )
    g = s.add_argument_group("guided few-label loop (--suggest; see README 'Adapt phototox to your cells')")
    g.add_argument(
        "--suggest",
        metavar="MODEL",
        help="serve this model's windows of your images: a fixed random test set of whole fields, at least "
        "30%% random windows, the rest uncertain and diverse under the head fitted so far",
    )
    g.add_argument(
        "--test-fraction", type=float, default=0.25, help="share of fields held out as the test set (default 0.25)"
    )
    g.add_argument("--test-every", type=int, default=4, help="every Nth vote is a test-field window (default 4)")
    g.add_argument(
        "--random-share",
        type=float,
        default=0.3,
        help="share of training windows drawn at random (>= 0.3, default 0.3)",
    )
    g.add_argument(
        "--pixel-size", type=float, metavar="UM", help="the images' pixel size in um/px (default: the model's)"
    )
    s.set_defaults(func=_serve)

    r = actions.add_parser("report", help="counts, agreement, Cohen's kappa, ambiguity, accuracy ceiling")
    r.add_argument("--db", required=True, help="the annotation database (SQLite) to report on")
    r.add_argument("--out", default=".", help="folder for annotation_report.json and .png")
    r.set_defaults(func=_report)

    e = actions.add_parser("export", help="training manifest of concordant labels (crops written as TIFF)")
    e.add_argument("--db", required=True, help="the annotation database (SQLite) to export")
    e.add_argument("--out", required=True, help="folder for crops/ and manifest.csv")
    e.add_argument(
        "--rule",
        choices=("unanimous", "majority"),
        default="unanimous",
        help="how annotators' votes become a label (default unanimous)",
    )
    e.add_argument(
        "--min-votes", type=int, default=1, help="export only items with at least this many votes (default 1)"
    )
    e.set_defaults(func=_export)


def _db(path: str, must_exist: bool = True):

    if must_exist and not Path(path).is_file():
        raise PhototoxError(f"{path}: no such annotation database")
    return AnnotationDB(path)


MIN_CROP = 32


def _at_least(name: str, value: int, low: int, high: int | None = None) -> None:
    """Refuse a numeric option outside [low, high] with one line naming it."""
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise PhototoxError(f"{name} must be {bound}, got {value}")


def _serve(args) -> int:
    from phototox.apps.annotate.items import make_items
    from phototox.apps.annotate.server import AppConfig, make_server

    _at_least("--crop", args.crop, MIN_CROP)
    _at_least("--frames", args.frames, 1)
    _at_least("--overlap-every", args.overlap_every, 0)
    _at_least("--port", args.port, 0, 65535)
    server = make_server(
        None,
        args.host,
        args.port,
        AppConfig(args.overlap_every, args.seed),  # port first:
        allowed_hosts=tuple(args.allow_host),
    )
    if args.suggest:
        return _serve_guided(args, server)
    try:  # a port in use must not leave a new database behind
        rows = make_items(args.inputs, args.crop, args.frames)
        if not rows:
            raise PhototoxError(f"no images found in {' '.join(args.inputs)}: nothing to annotate")
        server.db = db = _db(args.db, must_exist=False)
        added = db.add_items(rows)
    except BaseException:
        server.server_close()
        raise
    print(
        f"phototox annotate: {len(db.items())} items ({added} new) in {args.db}; "
        f"open http://{args.host}:{server.server_address[1]}/",
        flush=True,
    )
    return serve_until_interrupted(server)


def _serve_guided(args, server) -> int:
    """``serve --suggest``: windows of the model, test fields fixed first, suggestions (see guided.py)."""
    from phototox.apps.annotate.guided import prepare

    _at_least("--test-every", args.test_every, 2)
    try:
        server.db = db = _db(args.db, must_exist=False)
        state = prepare(
            db,
            args.inputs,
            args.suggest,
            args.pixel_size,
            args.test_fraction,
            args.seed,
            args.frames,
            args.test_every,
            args.random_share,
        )
    except BaseException:
        server.server_close()
        raise
    server.config.guided = state
    n_test = int(state.test.sum())
    print(
        f"phototox annotate (guided by {args.suggest}): {len(state.item_ids)} windows of "
        f"{len(state.settings['fields'])} fields; {len(state.settings['test_fields'])} test fields "
        f"({n_test} windows) fixed before any suggestion; open http://{args.host}:{server.server_address[1]}/",
        flush=True,
    )
    return serve_until_interrupted(server)


def _report(args) -> int:
    from phototox.apps.annotate.report import format_report, write_report

    report = write_report(_db(args.db), args.out)
    print(format_report(report))
    print(f"wrote {Path(args.out) / 'annotation_report.json'} and .png")
    return 0


def _export(args) -> int:
    from phototox.apps.annotate.export import export_manifest

    _at_least("--min-votes", args.min_votes, 1)
    manifest, n = export_manifest(_db(args.db), args.out, args.rule, args.min_votes)
    print(f"wrote {manifest} with {n} item(s) ({args.rule}, at least {args.min_votes} vote(s))")
    return 0
