"""Is sharing helping? Diagnostics of negative transfer between the tasks of an `MTLModel`.

- `GradientConflict`: a callback measuring how the tasks' gradients of the shared parameters
  agree (cosine, conflict rates, gradient norm ratios) during training.
- `TaskAffinity`: a callback measuring the lookahead inter-task affinity of Task Affinity
  Grouping (how a step for one task changes another's loss).
- `group_tasks`: the partition of the tasks into groups of the highest affinity.
- `single_task_baselines`: one single-task model per task, and the table of how the
  multi-task model compares (relative change per task, Δm).
- `report`: CSV tables and PNG plots of all of these.
"""

from keras_mtl.diagnostics.affinity import TaskAffinity
from keras_mtl.diagnostics.baselines import single_task_baselines
from keras_mtl.diagnostics.conflict import GradientConflict
from keras_mtl.diagnostics.grouping import TaskGrouping, group_tasks, partition_score
from keras_mtl.diagnostics.report import report

__all__ = [
    "GradientConflict",
    "TaskAffinity",
    "TaskGrouping",
    "group_tasks",
    "partition_score",
    "report",
    "single_task_baselines",
]
