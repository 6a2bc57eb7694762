"""The few things that differ between Keras backends, kept in one place and tested on each."""

import keras
import numpy as np


def concrete_value(x):
    """`x` as a NumPy array if it holds concrete values, else None (symbolic, traced or compiled).

    Concrete: NumPy arrays, Python lists, eager TensorFlow tensors, JAX arrays outside a trace, real PyTorch
    tensors (not fake or meta tensors of `torch.export`/`torch.compile` tracing). Never forces a trace to
    materialise.
    """
    if isinstance(x, np.ndarray | list | tuple | int):
        return np.asarray(x)
    if isinstance(x, keras.KerasTensor):
        return None
    module = type(x).__module__
    if module.startswith("tensorflow"):
        import tensorflow as tf

        return x.numpy() if tf.executing_eagerly() and hasattr(x, "numpy") else None
    if module.startswith("jax"):
        import jax

        return None if isinstance(x, jax.core.Tracer) else np.asarray(x)
    if module.startswith("torch"):
        import torch
        from torch._subclasses.fake_tensor import FakeTensor

        if torch.compiler.is_compiling() or isinstance(x, FakeTensor) or x.device.type == "meta":
            return None
        return x.detach().cpu().numpy()
    return None
