"""Progressive training: schedules, the trainer and optimizer-state transfer."""

from keras_nexus.training.checkpoints import OutputDirectoryError
from keras_nexus.training.optimizer_state import transfer_optimizer_state
from keras_nexus.training.schedule import Schedule
from keras_nexus.training.schedule import ScheduleError
from keras_nexus.training.schedule import Stage
from keras_nexus.training.schedule import default_schedule
from keras_nexus.training.schedule import load_schedule
from keras_nexus.training.trainer import GrowthLossMismatchError
from keras_nexus.training.trainer import ProgressiveTrainer

__all__ = [
    "GrowthLossMismatchError",
    "OutputDirectoryError",
    "ProgressiveTrainer",
    "Schedule",
    "ScheduleError",
    "Stage",
    "default_schedule",
    "load_schedule",
    "transfer_optimizer_state",
]
