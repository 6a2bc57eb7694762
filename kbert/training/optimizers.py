"""BERT's optimizers and learning-rate schedule: AdamW or LAMB, linear warmup then linear decay."""

import keras
from keras import ops

# BERT applies no weight decay to LayerNorm scales/offsets and biases (names as Keras gives them).
NO_DECAY_NAMES = ("bias", "gamma", "beta")
OPTIMIZERS = ("adamw", "lamb")


@keras.saving.register_keras_serializable(package="kbert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to `peak_learning_rate` over `warmup_steps`, then falls linearly to 0 at
    `total_steps` (BERT's schedule).

    With gradient accumulation Keras calls the schedule with the count of batches, not of updates;
    `batches_per_update` converts it, so the steps here always count updates.
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps, batches_per_update=1):
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}) and total_steps >= 1"
            )
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.batches_per_update = batches_per_update

    def __call__(self, step):
        step = ops.cast(ops.floor_divide(step, self.batches_per_update), "float32")
        warmup = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        factor = ops.where(step < self.warmup_steps, warmup, ops.maximum(decay, 0.0))
        return self.peak_learning_rate * factor

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "batches_per_update": self.batches_per_update,
        }


def create_optimizer(
    name="adamw",
    learning_rate=1e-4,
    warmup_steps=0,
    total_steps=None,
    weight_decay=0.01,
    clipnorm=1.0,
    gradient_accumulation_steps=None,
):
    """AdamW or LAMB with BERT's schedule and no weight decay on LayerNorm and bias variables.

    Args:
        name: "adamw" or "lamb".
        learning_rate: the peak learning rate.
        warmup_steps, total_steps: the schedule; without total_steps the rate stays at its peak.
        weight_decay: decoupled weight decay for the other variables.
        clipnorm: clip each gradient to this norm (BERT clips the global norm to 1.0), or None.
        gradient_accumulation_steps: apply the mean gradient of this many batches at once (Keras' own
            accumulation), for a larger effective batch; warmup_steps and total_steps still count updates.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r}; choose one of {OPTIMIZERS}")
    accumulation = gradient_accumulation_steps if (gradient_accumulation_steps or 1) > 1 else None
    if total_steps is not None:
        learning_rate = WarmupLinearDecay(learning_rate, warmup_steps, total_steps, accumulation or 1)
    cls = keras.optimizers.AdamW if name == "adamw" else keras.optimizers.Lamb
    optimizer = cls(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        global_clipnorm=clipnorm,
        gradient_accumulation_steps=accumulation,
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
