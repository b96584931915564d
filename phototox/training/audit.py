"""Design audit of a labelled manifest: can these data separate biology from batch?

For every grouping column (replicate, plate, date, well, group/field, dose, treatment and any other
non-path column with repeated values) the audit cross-tabulates label against the column's values
and measures association with Cramer's V (0: independent, 1: each value holds one label). Columns
are read in one of three roles:

* **design** (treatment, condition, drug, dose, control, exposure, ...): expected to explain the
  label -- the label is usually defined by them; reported, never a warning;
* **unit** (the manifest's group/field column, the unit of train/test splits): a field holding one
  label is normal; reported, never a warning;
* **batch** (everything else: replicate, plate, date, microscope, ...): a label explained by a
  batch column means a classifier can score by recognising the batch. ``V == 1`` is *fully
  confounded* (``phototox train`` refuses it without ``--allow-confounded``); ``V >= 0.5``
  *largely* explained.

The audit also runs :func:`phototox.training.nuisance.nuisance_baseline`: how well acquisition statistics
alone (intensity, contrast, sharpness, spectrum, saturation) predict the label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phototox import __version__
from phototox.errors import ManifestError
from phototox.io.images import write_text_atomic
from phototox.io.manifest import Sample, read_manifest
from phototox.io.planned import check_outputs
from phototox.models.architectures import CLASSES

DESIGN_WORDS = (
    "treat",
    "condition",
    "drug",
    "compound",
    "dose",
    "control",
    "exposure",
    "light",
    "concentration",
    "stimulus",
    "perturbation",
    "genotype",
)
IGNORED_COLUMNS = {"path", "label", "frames", "frame", "pixel_size_um", "notes", "note", "comment", "comments"}
FULL, LARGE = 1.0, 0.5


@dataclass
class ColumnAudit:
    """Label against one grouping column."""

    column: str
    role: str  # design, unit or batch
    table: dict[str, list[int]]  # value -> [healthy count, sick count]
    cramers_v: float
    verdict: str  # full, large, weak
    sentence: str

    def as_dict(self) -> dict:
        return {
            "column": self.column,
            "role": self.role,
            "table": self.table,
            "cramers_v": self.cramers_v,
            "verdict": self.verdict,
            "sentence": self.sentence,
        }


@dataclass
class AuditResult:
    """Every column's cross-tabulation, the nuisance baseline and the plain-words summary."""

    manifest: str
    n_images: int
    label_counts: dict[str, int]
    columns: list[ColumnAudit]
    baseline: dict | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def confounded_columns(self) -> list[str]:
        """Batch columns that fully explain the label."""
        return [c.column for c in self.columns if c.role == "batch" and c.verdict == "full"]

    @property
    def fully_confounded(self) -> bool:
        return bool(self.confounded_columns)

    def headline(self) -> str:
        """One or two lines for the terminal, beside an accuracy."""
        if self.fully_confounded:
            c = next(c for c in self.columns if c.column == self.confounded_columns[0])
            return (
                f"AUDIT: the design cannot separate biology from batch: {c.sentence} "
                "Accuracy on these data may measure the batch, not the cells."
            )
        large = [c for c in self.columns if c.role == "batch" and c.verdict == "large"]
        if large:
            return f"AUDIT: label largely explained by {large[0].column} (Cramer's V {large[0].cramers_v:.2f})."
        return "audit: no batch column explains the label."

    def as_dict(self) -> dict:
        return {
            "manifest": self.manifest,
            "n_images": self.n_images,
            "label_counts": self.label_counts,
            "fully_confounded": self.fully_confounded,
            "confounded_columns": self.confounded_columns,
            "columns": [c.as_dict() for c in self.columns],
            "nuisance_baseline": self.baseline,
            "warnings": self.warnings,
            "headline": self.headline(),
        }

    def summary(self) -> dict:
        """The compact record stored in a model's meta."""
        return {
            "manifest": self.manifest,
            "fully_confounded": self.fully_confounded,
            "confounded_columns": self.confounded_columns,
            "headline": self.headline(),
            "cramers_v": {c.column: round(c.cramers_v, 3) for c in self.columns},
            "nuisance_auc": (self.baseline or {}).get("auc"),
            "warnings": self.warnings,
        }


def grouping_columns(samples: list[Sample]) -> dict[str, list[str]]:
    """Column name -> value per sample, for every column that groups images (repeated values)."""
    raw: dict[str, list[str]] = {
        "group": [s.group for s in samples],
        "replicate": [s.replicate for s in samples],
        "dose": ["" if s.dose is None else f"{s.dose:g}" for s in samples],
        "time": [s.time for s in samples],
    }
    for key in sorted({k for s in samples for k in s.extra}):
        raw.setdefault(key, [str(s.extra.get(key, "")) for s in samples])
    out = {}
    for name, values in raw.items():
        if name in IGNORED_COLUMNS or not any(values):
            continue
        if len(set(values)) < 2 or len(set(values)) == len(values):  # constant, or unique per image
            continue
        out[name] = values
    return out


def column_role(name: str) -> str:
    lowered = name.lower()
    if lowered in ("group", "field", "position", "stage_position"):
        return "unit"
    return "design" if any(w in lowered for w in DESIGN_WORDS) else "batch"


def cramers_v(table: np.ndarray) -> float:
    """Cramer's V of a contingency table (rows values, columns labels); 0 when undefined."""
    table = np.asarray(table, dtype=float)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    n = table.sum()
    if n == 0 or min(table.shape) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def _describe(column: str, table: dict[str, list[int]], v: float, label_counts: list[int]) -> str:
    parts = []
    for label_id, label in enumerate(CLASSES):
        total = label_counts[label_id]
        if total == 0:
            continue
        holders = {value: counts[label_id] for value, counts in table.items() if counts[label_id]}
        if len(holders) == 1:
            value = next(iter(holders))
            parts.append(f"every {label} image is {column} {value} ({total} of {total})")
        else:
            value, count = max(holders.items(), key=lambda kv: kv[1])
            parts.append(f"{count} of {total} {label} images are {column} {value}")
    pure = all(min(c) == 0 for c in table.values())
    lead = (
        "fully explained by"
        if v >= FULL - 1e-9 and pure
        else "largely explained by"
        if v >= LARGE
        else "weakly associated with"
    )
    return f"label {lead} {column} (Cramer's V {v:.2f}): " + "; ".join(parts) + "."


def audit_columns(samples: list[Sample], unit_column: str | None = None) -> list[ColumnAudit]:
    """Cross-tabulate label against every grouping column of ``samples``."""
    labels = np.array([s.label for s in samples])
    label_counts = [int(np.sum(labels == k)) for k in range(len(CLASSES))]
    out = []
    for name, values in grouping_columns(samples).items():
        values_arr = np.array(values)
        levels = sorted(set(values))
        table = {lv: [int(np.sum((values_arr == lv) & (labels == k))) for k in range(len(CLASSES))] for lv in levels}
        v = cramers_v(np.array(list(table.values())))
        pure = all(min(c) == 0 for c in table.values())
        verdict = "full" if pure and v >= FULL - 1e-9 else "large" if v >= LARGE else "weak"
        role = "unit" if unit_column and name == unit_column.lower() else column_role(name)
        out.append(ColumnAudit(name, role, table, v, verdict, _describe(name, table, v, label_counts)))
    return out


def audit_samples(
    samples: list[Sample],
    manifest: str = "",
    unit_column: str | None = None,
    baseline: bool = True,
    seed: int = 0,
    n_resamples: int = 2000,
) -> AuditResult:
    """The full audit of labelled samples (labels must be known)."""

    if any(s.label < 0 for s in samples):
        raise ManifestError(f"{manifest or 'manifest'}: the audit needs a label for every row")
    labels = np.array([s.label for s in samples])
    counts = {name: int(np.sum(labels == k)) for k, name in enumerate(CLASSES)}
    columns = audit_columns(samples, unit_column)
    result = AuditResult(manifest, len(samples), counts, columns)
    if min(counts.values()) == 0:
        result.warnings.append("only one label in the manifest: nothing to audit against")
    for c in columns:
        if c.role == "batch" and c.verdict == "full":
            per_label = {k: sum(1 for t in c.table.values() if t[k]) for k in range(len(CLASSES))}
            if min(per_label.values()) <= 1:
                result.warnings.append(
                    f"{c.column}: a label occurs in one {c.column} only, so leave-one-{c.column}-out "
                    "evaluation is impossible (holding that value out leaves training with one label)"
                )
        elif c.role == "batch" and c.verdict == "large":
            result.warnings.append(c.sentence)
    if baseline and min(counts.values()) > 0:
        from phototox.training.nuisance import nuisance_baseline, sample_statistics

        features = sample_statistics(samples)
        nb = nuisance_baseline(
            features, labels, np.array([s.group for s in samples]), seed=seed, n_resamples=n_resamples
        )
        result.baseline = nb.as_dict()
        result.baseline["single_cues"] = single_cue_aucs(features, labels)
        result.baseline["scores"] = [None if np.isnan(v) else float(v) for v in nb.scores]
        if nb.auc is not None and nb.auc.low > 0.75:
            result.warnings.append(
                f"acquisition statistics alone (intensity, contrast, sharpness, spectrum) predict the label "
                f"with AUC {nb.auc}: a network can score without looking at cells"
            )
    return result


def single_cue_aucs(features: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Each acquisition statistic's own AUC (in-sample, direction-free), strongest first."""
    from phototox.training.evaluate import roc_auc
    from phototox.training.nuisance import FEATURES

    out = []
    for k, name in enumerate(FEATURES):
        auc = roc_auc(features[:, k], labels)
        if np.isnan(auc):
            continue
        out.append(
            {
                "feature": name,
                "meaning": FEATURES[name],
                "auc": float(max(auc, 1 - auc)),
                "higher_in": CLASSES[1] if auc >= 0.5 else CLASSES[0],
            }
        )
    return sorted(out, key=lambda d: -d["auc"])


def format_audit(result: AuditResult) -> str:
    """The report as plain text for the terminal."""
    lines = [
        f"audit of {result.manifest or 'manifest'}: {result.n_images} images, "
        + ", ".join(f"{v} {k}" for k, v in result.label_counts.items())
    ]
    for c in result.columns:
        lines.append(f"  [{c.role:6s}] {c.sentence}")
    if not result.columns:
        lines.append("  no grouping column with repeated values (replicate, plate, date, ...) to audit")
    b = result.baseline
    if b and b.get("auc"):
        lines.append(
            f"nuisance baseline ({len(b['features'])} acquisition statistics, logistic regression, "
            f"{b['n_folds']}-fold grouped CV): AUC {_ci(b['auc'])}, balanced accuracy "
            f"{_ci(b['balanced_accuracy'])} (95% bootstrap over groups)"
        )
    elif b:
        lines.append(f"nuisance baseline: not computable ({b.get('note')})")
    if b and b.get("single_cues"):
        lines.append(
            "strongest single cues (in-sample AUC): "
            + "; ".join(f"{c['meaning']} {c['auc']:.2f} (higher in {c['higher_in']})" for c in b["single_cues"][:3])
        )
    lines.append(result.headline())
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def _ci(d: dict) -> str:
    return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def audit_output_paths(out_dir: str | Path) -> list[Path]:
    """The files :func:`write_audit_report` writes: audit.md, audit.json and audit.png in ``out_dir``."""
    return [Path(out_dir) / name for name in ("audit.md", "audit.json", "audit.png")]


def write_audit_report(
    result: AuditResult, samples: list[Sample], out_dir: str | Path, extra: dict | None = None
) -> list[Path]:
    """audit.json, audit.md and audit.png in ``out_dir``."""
    from phototox.training.plots_audit import plot_audit

    markdown, record_path, png = audit_output_paths(out_dir)
    record = {**(extra or {}), **result.as_dict()}
    write_text_atomic(record_path, json.dumps(record, indent=2))
    plot_audit(result, np.array([s.label for s in samples]), png)
    write_text_atomic(markdown, audit_markdown(result, extra))
    return [markdown, record_path, png]


def audit_markdown(result: AuditResult, extra: dict | None = None) -> str:
    """The short Markdown report."""
    lines = [
        f"# Design audit: {result.manifest or 'manifest'}",
        "",
        f"{result.n_images} images: " + ", ".join(f"{v} {k}" for k, v in result.label_counts.items()) + ".",
        "",
        f"**{result.headline()}**",
        "",
    ]
    if extra:
        lines += [f"- {k}: {v}" for k, v in extra.items()] + [""]
    lines += [
        "## Label against each grouping column",
        "",
        "| column | role | Cramer's V | verdict | counts (value: healthy/sick) |",
        "|---|---|---|---|---|",
    ]
    for c in result.columns:
        counts = "; ".join(f"{v}: {h}/{s}" for v, (h, s) in list(c.table.items())[:12])
        more = f" (+{len(c.table) - 12} more)" if len(c.table) > 12 else ""
        lines.append(f"| {c.column} | {c.role} | {c.cramers_v:.2f} | {c.verdict} | {counts}{more} |")
    lines += [
        "",
        *[f"- {c.sentence}" for c in result.columns],
        "",
        (
            "Roles: *batch* columns must not explain the label; *design* columns (treatment, dose) "
            "are expected to; *unit* is the split unit (field)."
        ),
        "",
        "## Nuisance baseline",
        "",
    ]
    b = result.baseline
    if b and b.get("auc"):
        lines.append(
            f"A logistic regression on acquisition statistics alone ({', '.join(b['features'])}), "
            f"{b['n_folds']}-fold cross-validation with whole groups per fold: AUC {_ci(b['auc'])}, "
            f"balanced accuracy {_ci(b['balanced_accuracy'])} (95% percentile intervals, resampling groups within each label). "
            "Near 0.5: these cues do not give the label away; near 1: they do, and a network's "
            "accuracy cannot show that it learned cell morphology."
        )
    else:
        lines.append(f"Not computable: {(b or {}).get('note', 'no baseline run')}.")
    if b and b.get("single_cues"):
        lines += [
            "",
            "| statistic | AUC alone (in-sample) | higher in |",
            "|---|---|---|",
            *[f"| {c['meaning']} | {c['auc']:.2f} | {c['higher_in']} |" for c in b["single_cues"]],
            "",
            (
                "A cue can be biology (dying cells round up and raise contrast) or acquisition (focus, lamp, "
                "camera); where a batch column explains the label, the two cannot be told apart."
            ),
        ]
    if result.warnings:
        lines += ["", "## Warnings", "", *[f"- {w}" for w in result.warnings]]
    lines += ["", "![audit](audit.png)", ""]
    return "\n".join(lines)


def audit_manifest(
    manifest: str | Path,
    out_dir: str | Path | None = None,
    group_column: str | None = None,
    dose_threshold: float | None = None,
    seed: int = 0,
) -> AuditResult:
    """Read a manifest, audit it, and write the report when ``out_dir`` is given (``phototox audit``)."""

    samples = read_manifest(manifest, dose_threshold=dose_threshold, group_column=group_column)
    if out_dir is not None:
        check_outputs(audit_output_paths(out_dir), [manifest, *(s.path for s in samples)])
    result = audit_samples(samples, str(manifest), group_column, seed=seed)
    if out_dir is not None:
        write_audit_report(result, samples, out_dir, {"phototox_version": __version__})
    return result
