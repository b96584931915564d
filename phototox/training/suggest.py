"""Which window to label next: a fixed test set of whole fields, random windows, and informative ones.

Order of an annotator's items (slot ``k`` = how many votes they have cast):

* test fields are drawn once, at random, *before any suggestion* (:func:`choose_test_fields`); their
  windows are shown every ``test_every``-th slot, in random order, and never enter the suggestion
  pool or training: they measure the adapted model;
* of the other slots (training slots ``j = 0, 1, ...``), slot ``j`` is a uniformly random window
  when ``ceil((j + 1) r) > ceil(j r)`` (``r`` = random share, at least 0.3), so every prefix of
  ``j`` training slots holds at least ``ceil(j r)`` random windows (an unbiased sample of the
  user's windows, whatever the model believes);
* the remaining slots are *suggested*: among the ``shortlist`` windows whose current P(sick) is
  closest to 0.5 (uncertainty), the one farthest in standardised head-feature space from every
  window already labelled (diversity, a k-centre step).
"""

from __future__ import annotations

import math

import numpy as np

MIN_RANDOM_SHARE = 0.3
SHORTLIST = 20


def choose_test_fields(fields: list[str], fraction: float, seed: int) -> list[str]:
    """A random ``fraction`` of the distinct fields (at least 1, leaving at least 2 for training)."""
    distinct = sorted(set(fields))
    if len(distinct) < 3:
        raise ValueError(f"{len(distinct)} field(s): a held-out test set needs at least 3 fields")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test fraction must lie strictly between 0 and 1, got {fraction}")
    n = min(max(1, round(fraction * len(distinct))), len(distinct) - 2)
    rng = np.random.default_rng(seed)
    return sorted(distinct[i] for i in rng.choice(len(distinct), n, replace=False))


def slot_kind(slot: int, test_every: int, random_share: float) -> str:
    """``test``, ``random`` or ``suggested`` for an annotator's ``slot``-th item (see module docstring)."""
    if random_share < MIN_RANDOM_SHARE or random_share > 1:
        raise ValueError(f"random share must lie in [{MIN_RANDOM_SHARE}, 1], got {random_share}")
    if test_every > 0 and (slot + 1) % test_every == 0:
        return "test"
    j = slot - ((slot + 1) // test_every if test_every > 0 else 0)  # training slots before this one
    return "random" if math.ceil((j + 1) * random_share) > math.ceil(j * random_share) else "suggested"


def suggest(
    features: np.ndarray,
    p_sick: np.ndarray,
    pool: np.ndarray,
    labelled: np.ndarray,
    shortlist: int = SHORTLIST,
) -> int:
    """Index (into ``features``) of the most informative window of ``pool`` (see module docstring)."""
    pool = np.asarray(pool, dtype=int)
    if len(pool) == 0:
        raise ValueError("empty suggestion pool")
    uncertainty = -np.abs(np.asarray(p_sick, dtype=float)[pool] - 0.5)
    order = np.lexsort((pool, -uncertainty))  # most uncertain first, ties by index
    short = pool[order[:shortlist]]
    labelled = np.asarray(labelled, dtype=int)
    if len(labelled) == 0:
        return int(short[0])
    x = np.asarray(features, dtype=float)
    scale = x.std(0)
    scale[scale < 1e-12] = 1.0
    z = (x - x.mean(0)) / scale
    distance = np.min(np.linalg.norm(z[short][:, None, :] - z[labelled][None, :, :], axis=2), axis=1)
    return int(short[int(np.argmax(distance))])
