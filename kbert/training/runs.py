"""The settings every training run shares (pretraining, fine-tuning, distillation), and how a run applies them.

Each run's config dataclass extends `RunSettings`; the entry points' flags for these fields come from one helper
(`recipes/flags.py`), so `--seed`, `--mixed-precision`, `--jit` and `--out` mean the same in every command.
"""

import dataclasses

import keras

from kbert.backend import process_settings, start_processes

# --mixed-precision → Keras dtype policy.
MIXED_PRECISION = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclasses.dataclass
class RunSettings:
    """Settings of any run.

    Attributes:
        seed: seeds data order, masks, dropout and fresh weights (`keras.utils.set_random_seed`).
        mixed_precision: "none" (float32), "bf16" or "fp16": the Keras dtype policy of the models built.
        jit: compile the training step (None: the backend's default for the run, see `kbert.backend`).
        out: the output folder.
        coordinator, num_processes, process_id: a run over several processes (JAX; `kbert.backend.start_processes`):
            the coordinator's `HOST:PORT`, the number of processes and this one's index. None: Keras' variables
            (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `..._NUM_PROCESSES`, `..._PROCESS_ID`), else one process.
    """

    seed: int = 0
    mixed_precision: str = "none"
    jit: bool | None = None
    out: str = "runs/run"
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    def check_run_settings(self):
        """Raises `ValueError` naming a shared setting out of range."""
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision={self.mixed_precision!r}; choose one of {list(MIXED_PRECISION)}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}; use a whole number >= 0")

    def check_counts(self, *names):
        """Raises `ValueError` naming the first of the fields `names` (counts; None: unset) that is below 1."""
        for name in names:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value!r}; use a positive number")


def require_one_process(settings: RunSettings, what):
    """Raises `ValueError` when the settings (or Keras' variables) ask for several processes, which `what` does not
    run on yet."""
    _, num_processes, _ = process_settings(settings.coordinator, settings.num_processes, settings.process_id)
    if num_processes > 1:
        raise ValueError(
            f"{what} runs in one process; num_processes={num_processes} (from --num-processes or "
            "KERAS_DISTRIBUTION_NUM_PROCESSES) is for pretraining: unset it"
        )


def join_processes(settings: RunSettings):
    """Joins a run over several processes (before any JAX computation; nothing for one process); returns
    `(num_processes, process_id)`."""
    return start_processes(settings.coordinator, settings.num_processes, settings.process_id)


def begin_run(settings: RunSettings):
    """Seeds every random stream and sets the dtype policy: the first thing a run does once its inputs are read.
    Every process of a run seeds alike, so they build the same weights and draw the same data order."""
    keras.utils.set_random_seed(settings.seed)
    keras.config.set_dtype_policy(MIXED_PRECISION[settings.mixed_precision])
