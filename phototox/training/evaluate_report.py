"""``phototox evaluate`` end to end: metrics, calibration (ECE, reliability diagram), per-group
breakdown, and the design audit's warning printed beside the accuracy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from phototox.errors import PhototoxError
from phototox.io.images import write_text_atomic
from phototox.io.manifest import Sample
from phototox.results.provenance import provenance

if TYPE_CHECKING:  # evaluate imports torch; this module stays light until a report is made
    from phototox.training.audit import AuditResult
    from phototox.training.evaluate import Evaluation


@dataclass
class EvaluationReport:
    """Everything ``phototox evaluate`` prints and writes."""

    evaluation: Evaluation
    calibration: dict
    audit: AuditResult | None
    per_group: dict | None
    split_by: str | None
    provenance: dict

    def text(self) -> str:
        from phototox.training.crossval import format_per_group
        from phototox.training.evaluate import format_metrics

        lines = []
        if self.audit is not None and self.audit.fully_confounded:
            lines.append(self.audit.headline())
        lines.append(format_metrics(self.evaluation.metrics))
        e = self.calibration.get("ece")
        if e:
            lines.append(
                f"expected calibration error (crops, {self.calibration['n_bins']} bins, 95% BCa over images) "
                f"{e['estimate']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"
            )
        if self.per_group is not None:
            lines.append(format_per_group(self.split_by or "", self.per_group))
        if self.audit is not None:
            if not self.audit.fully_confounded:
                lines.append(self.audit.headline())
            lines += [f"audit warning: {w}" for w in self.audit.warnings]
        lines.append(
            f"model {self.provenance['model_name']} (sha256 {self.provenance['model_sha256'][:16]}), "
            f"phototox {self.provenance['phototox_version']}"
        )
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        from phototox.training.evaluate import write_evaluation
        from phototox.training.plots_audit import plot_reliability

        out = Path(out_dir)
        written = write_evaluation(self.evaluation, out, self.provenance)
        record = {**self.evaluation.metrics, "calibration": self.calibration, "provenance": self.provenance}
        if self.per_group is not None:
            record["per_" + (self.split_by or "group")] = self.per_group
        if self.audit is not None:
            record["audit"] = self.audit.summary()
        write_text_atomic(out / "metrics.json", json.dumps(record, indent=2))
        if self.calibration.get("bins"):
            plot_reliability(self.calibration, out / "reliability.png", f"reliability: {self.provenance['model_name']}")
            written.append(out / "reliability.png")
        return written


def held_out_indices(model_meta: dict, samples: list[Sample], model_name: str) -> list[int]:
    """Indices of the samples whose group did not train the model (its card records ``train_groups``)."""
    trained_on = set(model_meta.get("train_groups") or [])
    if not trained_on:
        raise PhototoxError(f"--held-out: model {model_name} does not record its training groups")
    indices = [i for i, s in enumerate(samples) if s.group not in trained_on]
    if not indices:
        raise PhototoxError("--held-out: every image of the manifest was used to train this model")
    return indices


def evaluate_manifest(
    predictor,
    samples: list[Sample],
    indices: list[int] | None = None,
    manifest: str = "",
    threshold: float = 0.5,
    seed: int = 0,
    split_by: str | None = None,
    unit_column: str | None = None,
    audit: bool = True,
    progress: bool = False,
) -> EvaluationReport:
    """Evaluate ``predictor`` on the chosen samples; calibration, per-group metrics and the audit."""
    from phototox.stats.calibration_metrics import reliability_diagram
    from phototox.training.audit import audit_samples
    from phototox.training.crossval import column_values, per_group_metrics
    from phototox.training.evaluate import evaluate_samples

    if split_by:
        column_values(samples, split_by)  # fail fast on a missing column, before the model runs
    evaluation = evaluate_samples(predictor, samples, indices, threshold, seed, progress=progress)
    calibration = (
        reliability_diagram(evaluation.probs, evaluation.labels, evaluation.sample_index, seed=seed, unit="crops")
        if len(evaluation.labels) >= 2
        else {}
    )
    chosen = [samples[i] for i in (range(len(samples)) if indices is None else indices)]
    design = None
    if audit and len({s.label for s in chosen}) == 2:
        design = audit_samples(chosen, manifest, unit_column, seed=seed, n_resamples=500)
    per_group = None
    if split_by:
        trained = set(predictor.model.meta.get("train_groups") or []) or None
        per_group = per_group_metrics(evaluation, split_by, trained)
    return EvaluationReport(evaluation, calibration, design, per_group, split_by, provenance(predictor.model))
