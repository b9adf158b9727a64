"""The robustness protocol of ``hubdet evaluate``: its perturbations are defined once in :mod:`hubdet.data.perturb`
(the data layer, so that a detector's stability check uses the very same degradations) and re-exported here."""

from hubdet.data.perturb import (
    PERTURBATIONS,
    PROTOCOL,
    Kind,
    Perturbation,
    apply_perturbation,
    get_perturbation,
    jitter_factors,
    resolve_perturbations,
)

__all__ = [
    "PERTURBATIONS", "PROTOCOL", "Kind", "Perturbation", "apply_perturbation", "get_perturbation", "jitter_factors",
    "resolve_perturbations",
]
