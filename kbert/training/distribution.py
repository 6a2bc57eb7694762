"""Several devices through `keras.distribution` (JAX): data parallel, or the encoder's weights sharded.

The same code runs on one host's GPUs or TPU cores and on CPU devices made with
`XLA_FLAGS=--xla_force_host_platform_device_count=4` (set before JAX starts), which is how the tests run it.
"""

import keras

# Megatron-style sharding of each encoder block over the "model" axis: the query/key/value and first
# feed-forward kernels split by output column, the attention-output and second feed-forward kernels by input row,
# so each block needs one reduction per half. Embeddings, LayerNorms and heads stay replicated.
ENCODER_LAYOUT = {
    r".*encoder_block_\d+/attention/(query|key|value)/kernel": (None, "model"),
    r".*encoder_block_\d+/attention/(query|key|value)/bias": ("model",),
    r".*encoder_block_\d+/attention/output/kernel": ("model", None),
    r".*encoder_block_\d+/intermediate/kernel": (None, "model"),
    r".*encoder_block_\d+/intermediate/bias": ("model",),
    r".*encoder_block_\d+/output/kernel": ("model", None),
}


def _check_backend(what):
    if keras.config.backend() != "jax":
        raise ValueError(
            f"{what} needs the JAX backend (keras.distribution), not {keras.config.backend()!r}; "
            "run with --backend jax"
        )


def data_parallel(devices=None):
    """`keras.distribution.DataParallel` over `devices` (default: all): weights replicated, batches split."""
    _check_backend("data parallel training")
    return keras.distribution.DataParallel(devices=devices or keras.distribution.list_devices())


def encoder_layout_map(device_mesh):
    """A `LayoutMap` sharding every encoder block's dense kernels over the mesh's "model" axis."""
    layout_map = keras.distribution.LayoutMap(device_mesh)
    for pattern, axes in ENCODER_LAYOUT.items():
        layout_map[pattern] = axes
    return layout_map


def model_parallel(model_shards, devices=None):
    """`keras.distribution.ModelParallel` on a (batch, model) mesh: `model_shards` devices share each encoder
    weight (see `ENCODER_LAYOUT`), and the batch is split over the `len(devices) / model_shards` groups.

    Raises:
        ValueError: when `model_shards` does not divide the number of devices.
    """
    _check_backend("model parallel training")
    devices = devices or keras.distribution.list_devices()
    if model_shards < 1 or len(devices) % model_shards:
        raise ValueError(
            f"model_shards={model_shards} must divide the {len(devices)} devices; choose one of "
            f"{[n for n in range(1, len(devices) + 1) if len(devices) % n == 0]}"
        )
    mesh = keras.distribution.DeviceMesh(
        shape=(len(devices) // model_shards, model_shards), axis_names=("batch", "model"), devices=devices
    )
    return keras.distribution.ModelParallel(layout_map=encoder_layout_map(mesh), batch_dim_name="batch")


def batch_shards(distribution):
    """How many parts each global batch is split into (1 without a distribution)."""
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    return mesh.shape[mesh.axis_names.index("batch")]
