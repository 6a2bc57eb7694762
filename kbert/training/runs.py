"""The settings every training run shares (pretraining, fine-tuning, distillation), and how a run applies them.

Each run's config dataclass extends `RunSettings`; the entry points' flags for these fields come from one helper
(`recipes/flags.py`), so `--seed`, `--mixed-precision`, `--jit` and `--out` mean the same in every command.
"""

import dataclasses

import keras

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
    """

    seed: int = 0
    mixed_precision: str = "none"
    jit: bool | None = None
    out: str = "runs/run"

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


def begin_run(settings: RunSettings):
    """Seeds every random stream and sets the dtype policy: the first thing a run does once its inputs are read."""
    keras.utils.set_random_seed(settings.seed)
    keras.config.set_dtype_policy(MIXED_PRECISION[settings.mixed_precision])
