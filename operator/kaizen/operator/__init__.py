"""The Kubernetes executor of Kaizen: a kopf operator that runs `ImprovementCycle`s as Jobs.

`kopf run -m kaizen.operator` (or `python -m kaizen.operator`) imports this package, which
registers the handlers. Layers: `handlers` (kopf triggers) → `reconciler` (apply the engine's
decision) → `jobs` (pure builders) and `kube` (the only module that calls the API).
"""

from kaizen.operator import handlers as handlers

__all__ = ["handlers"]
