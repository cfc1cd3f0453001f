"""The sample training tasks: registry, data, schedules and the loop behind ``dyntools train``."""

from dyntools.train.loop import EpochRecord, RunResult, train
from dyntools.train.schedule import EpochSchedule, parse_schedule
from dyntools.train.tasks import TASKS, TaskSpec, get_task

__all__ = [
    "TASKS",
    "EpochRecord",
    "EpochSchedule",
    "RunResult",
    "TaskSpec",
    "get_task",
    "parse_schedule",
    "train",
]
