"""The few things that differ between Keras backends, kept in one place and tested on each."""

import base64
import contextlib
import operator
import os

import keras
import numpy as np


def torch_compiling():
    """True while `torch.compile` traces (PyTorch backend): Python-side checks must then stay out of the way,
    since reading a value (or a context variable) there splits the compiled step into pieces."""
    if keras.config.backend() != "torch":
        return False
    import torch

    return torch.compiler.is_compiling()


def tensorflow_xla_compiling():
    """True while TensorFlow traces a function for XLA (`jit_compile=True`, as Keras' compiled steps on TensorFlow)."""
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_util

    return not tf.executing_eagerly() and control_flow_util.GraphOrParentsInXlaContext(
        tf_ops.get_default_graph()
    )


def int_bitwise_ops():
    """xor, and, arithmetic right shift on int32 tensors: Python's operators, which TensorFlow tensors lack for
    integers (there `tf.bitwise`). Keras' bitwise ops would do on every backend, but under torch.compile they lift
    each constant into a tensor, which makes the dropout masks slower.
    Measured in docs/performance.md, section 'Dropout masks'."""
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        return tf.bitwise.bitwise_xor, tf.bitwise.bitwise_and, tf.bitwise.right_shift
    return operator.xor, operator.and_, operator.rshift


def concrete_value(x):
    """`x` as a NumPy array if it holds concrete values, else None (symbolic, traced or compiled).

    Concrete: NumPy arrays, Python lists, eager TensorFlow tensors, JAX arrays outside a trace, real PyTorch
    tensors (not fake or meta tensors of `torch.export`/`torch.compile` tracing). Never forces a trace to
    materialise.
    """
    if torch_compiling():
        return None
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
        from torch._subclasses.fake_tensor import FakeTensor

        if isinstance(x, FakeTensor) or x.device.type == "meta":
            return None
        return x.detach().cpu().numpy()
    return None


def global_random_state():
    """The backend's global random state, where dropout draws from it: only PyTorch, whose Keras dropout without
    a seed calls `torch.nn.functional.dropout` (the torch generator) instead of the layer's SeedGenerator."""
    if keras.config.backend() != "torch":
        return None
    import torch

    states = [torch.get_rng_state()]
    if torch.cuda.is_available():
        states += torch.cuda.get_rng_state_all()
    return [base64.b64encode(state.numpy().tobytes()).decode("ascii") for state in states]


def set_global_random_state(encoded):
    """Restores what `global_random_state` returned."""
    if encoded is None or keras.config.backend() != "torch":
        return
    import torch

    states = [torch.from_numpy(np.frombuffer(base64.b64decode(text), np.uint8).copy()) for text in encoded]
    torch.set_rng_state(states[0])
    if torch.cuda.is_available() and len(states) > 1:
        torch.cuda.set_rng_state_all(states[1:])


def sparse_cross_entropy(labels, logits, return_hits=False):
    """Softmax cross-entropy per row from integer `labels` [...] and `logits` [..., classes], computed in float32.

    As `keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)`, as logsumexp minus the
    label's logit. Keras' JAX version multiplies by a one-hot of the labels instead: on the masked-LM logits it
    writes and reads a dense one-hot and its gradient. Measured in docs/performance.md, section 'Cross-entropy'.

    With `return_hits`, also a float32 1/0 per row: whether the label's logit is the largest (top-1 accuracy).
    It reuses the logsumexp's row maximum, where an argmax would be one more pass over the logits, and a slow one
    under XLA (a reduction over value and index pairs). Measured in docs/performance.md, section 'Top-1 accuracy'.
    A tie with the top logit counts as a hit.
    """
    logits = keras.ops.cast(logits, "float32")
    labels = keras.ops.expand_dims(keras.ops.cast(labels, "int32"), -1)
    if torch_compiling():
        # Under torch.compile the label's logit is picked by comparing with the class index: inductor fuses that
        # into the logsumexp's pass and its gradient into the softmax gradient's, where a gather's gradient is a
        # zero fill plus a scatter over the whole [..., classes] tensor.
        classes = keras.ops.arange(keras.ops.shape(logits)[-1], dtype="int32")
        picked = keras.ops.sum(keras.ops.where(classes == labels, logits, 0.0), axis=-1)
    else:
        picked = keras.ops.squeeze(keras.ops.take_along_axis(logits, labels, axis=-1), -1)
    # logsumexp with the row maximum held constant (its gradient is the softmax either way); amax, as Keras'
    # PyTorch ops.max has an isinstance check that torch.compile cannot trace.
    top = keras.ops.stop_gradient(keras.ops.amax(logits, axis=-1, keepdims=True))
    top = keras.ops.where(keras.ops.isfinite(top), top, 0.0)  # rows of -inf stay -inf, not NaN
    row_top = keras.ops.squeeze(top, -1)
    loss = keras.ops.log(keras.ops.sum(keras.ops.exp(logits - top), axis=-1)) + row_top - picked
    if not return_hits:
        return loss
    return loss, keras.ops.cast(picked >= row_top, "float32")


def add_row_bias(matrix, bias):
    """`matrix` [rows, columns] + `bias` [columns], with a bias gradient that is fast on JAX's CPU backend too.

    On JAX the bias enters as a rank-1 product (a column of ones times the bias row), so its gradient is a
    [1, rows] x [rows, columns] product. As a broadcast add its gradient is a column sum, which XLA's CPU backend
    under JAX runs slowly on the masked-LM logits. Measured in docs/performance.md, section 'Bias gradient'.
    Elsewhere a plain add.
    """
    if keras.config.backend() != "jax":
        return matrix + bias
    ones = keras.ops.ones((keras.ops.shape(matrix)[0], 1), dtype=matrix.dtype)
    return matrix + keras.ops.matmul(ones, keras.ops.expand_dims(bias, 0))


def matmul_add(x, kernel, bias):
    """`x @ kernel + bias` for `x` [..., in], `kernel` [in, out], `bias` [out].

    On PyTorch one `torch.addmm` on the rows: the bias is added inside oneDNN's product instead of in a second pass
    over the output. Measured in docs/inference.md, section 'The exact mode's ceiling'. TensorFlow's graph mode and
    XLA are faster with the plain ops.
    """
    if keras.config.backend() != "torch":
        return keras.ops.add(keras.ops.matmul(x, kernel), bias)
    import torch

    kernel, bias = keras.ops.convert_to_tensor(kernel), keras.ops.convert_to_tensor(bias)
    rows = torch.addmm(bias, x.reshape(-1, x.shape[-1]), kernel)
    return rows.reshape(*x.shape[:-1], kernel.shape[-1])


def varying_shape_jit(jit=None):
    """The `jit_compile` for training steps over batches of varying length (fine-tuning, distillation).

    `jit` True or False is taken as given, except on PyTorch (where Keras' jit means torch.compile, not used
    here). None chooses: XLA on JAX (its alternative is op-by-op dispatch) and on TensorFlow with a GPU or TPU;
    on a CPU-only TensorFlow, graph mode, where XLA compiles every batch length and runs the small matmuls of
    short batches on one core. Measured in docs/performance.md, section 'XLA on CPU'. Pretraining, with one fixed
    shape, keeps XLA on TensorFlow's CPU too.
    """
    backend = keras.config.backend()
    if backend == "torch":
        return False
    if jit is not None:
        return bool(jit)
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
    return True


def fixed_shape_jit(jit=None):
    """The `jit_compile` for training steps over one fixed batch shape (pretraining).

    `jit` True or False is taken as given: XLA on TensorFlow and JAX, torch.compile on PyTorch. None chooses XLA
    on TensorFlow (its CPU too: one shape compiles once) and JAX, and eager on PyTorch, where compiling takes
    long before the first update and pays back only after many steps.
    Measured in docs/performance.md, section 'torch.compile'.
    """
    if jit is None:
        return keras.config.backend() != "torch"
    return bool(jit)


def keep_large_allocations():
    """Keeps the memory of freed large host buffers mapped, for the next step to reuse (JAX and PyTorch, glibc).

    XLA's CPU runtime under JAX allocates each step's temporaries with malloc, and PyTorch its large tensors.
    glibc maps every block over 32 MB afresh (or over 64 MB from a thread's arena) and unmaps it when freed, so
    each step touches hundreds of MB of new pages, where TensorFlow's own allocator keeps its memory. `import
    kbert` calls this on the JAX and PyTorch backends, on Linux with glibc: one malloc arena for all threads (so a
    large block can come from the main heap), no mmap for large blocks, and up to 1 GiB of free memory kept at the
    heap's top. Measured in docs/performance.md, section 'Host memory'. Threads that allocated before `import
    kbert` keep their own arenas: import kbert before running JAX or PyTorch code, or set the same from the
    process start for all of it
    (`GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824`).
    Returns whether it was applied.
    """
    import ctypes
    import platform
    import sys

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if keras.config.backend() not in ("jax", "torch"):
        return False
    mallopt = ctypes.CDLL(None).mallopt
    m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8  # from glibc's malloc.h
    return all(
        mallopt(option, value) == 1
        for option, value in ((m_arena_max, 1), (m_mmap_max, 0), (m_trim_threshold, 1 << 30))
    )


@contextlib.contextmanager
def variables_kept_on_error(model):
    """Inside this block an exception leaves `model`'s variables holding their last values (JAX only).

    Keras' JAX loops take every variable's value out of the variable for the length of `fit`, `evaluate` or
    `predict` and put the values back when the loop ends; an exception raised while reading a batch (a bad input
    found by `kbert.models.checks.checked_data`) skips that, and the model is left with empty variables ("'NoneType'
    object is not callable" on its next call). The values are put back from Keras' own latest state, or, before the
    first step, from the values the variables held on entry. Holding those costs no memory: they are the same
    arrays, and Keras donates them to its first step.
    """
    if keras.config.backend() != "jax":
        yield
        return
    optimizer = getattr(model, "optimizer", None)
    variables = list(model.variables) + (list(optimizer.variables) if optimizer is not None else [])
    entry_values = [(variable, variable._value) for variable in variables]
    try:
        yield
    except BaseException:
        if getattr(model, "_jax_state", None) and not model._jax_state_synced:
            model.jax_state_sync()
        for variable, value in entry_values:
            if variable._value is None:
                variable._value = value
        model._jax_state_synced = True
        raise


# Environment variables of Keras' multi-process setup (`keras.distribution.initialize`), set by cluster launchers.
PROCESS_VARIABLES = {
    "coordinator": "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "num_processes": "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "process_id": "KERAS_DISTRIBUTION_PROCESS_ID",
}
# How long a process waits for the others to join, and after how long without a heartbeat a process counts as dead
# (JAX's defaults, 300 s and 100 s, turn a typo or a crash into minutes of silence).
JOIN_TIMEOUT_SECONDS = 60
HEARTBEAT_TIMEOUT_SECONDS = 10


def process_settings(coordinator=None, num_processes=None, process_id=None, environ=None):
    """`(coordinator, num_processes, process_id)`: the arguments given, else Keras' variables
    (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `..._NUM_PROCESSES`, `..._PROCESS_ID`), as `keras.distribution.initialize`
    reads them; `(None, 1, 0)` for a single process.

    Raises:
        ValueError: naming the setting that is missing, not a number, or out of range.
    """
    environ = os.environ if environ is None else environ
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    for name, variable in PROCESS_VARIABLES.items():
        if given[name] is None and environ.get(variable):
            given[name] = environ[variable]
    coordinator, num_processes, process_id = given.values()
    try:
        num_processes = 1 if num_processes is None else int(num_processes)
        process_id = 0 if process_id is None else int(process_id)
    except ValueError:
        raise ValueError(
            f"num_processes={given['num_processes']!r}, process_id={given['process_id']!r}: both must be whole "
            "numbers (--num-processes, --process-id, or KERAS_DISTRIBUTION_NUM_PROCESSES/_PROCESS_ID)"
        ) from None
    if num_processes < 1:
        raise ValueError(f"num_processes={num_processes}; use 1 or more")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id={process_id} is not in 0..{num_processes - 1} (num_processes={num_processes}); give each "
            "process its own id, 0 on the coordinator's host"
        )
    if num_processes > 1 and not coordinator:
        raise ValueError(
            f"num_processes={num_processes} needs the coordinator's address (--coordinator HOST:PORT, or "
            "KERAS_DISTRIBUTION_JOB_ADDRESSES), the same on every process"
        )
    if coordinator and "," in coordinator:  # Keras' list of every job's address: the first is the coordinator
        coordinator = coordinator.split(",")[0]
    return coordinator, num_processes, process_id


def start_processes(coordinator=None, num_processes=None, process_id=None):
    """Joins this process to a multi-process JAX run (`jax.distributed.initialize`) before any JAX computation, as
    `keras.distribution.initialize` does, with bounded waits (`JOIN_TIMEOUT_SECONDS`, `HEARTBEAT_TIMEOUT_SECONDS`)
    and CPU collectives (gloo) for CPU devices. Does nothing for a single process. Returns `(num_processes,
    process_id)`.

    Raises:
        ValueError: a bad setting (see `process_settings`), several processes on a backend other than JAX, or a
            coordinator that does not answer within the join timeout (the message names it).
    """
    coordinator, num_processes, process_id = process_settings(coordinator, num_processes, process_id)
    if num_processes == 1:
        return 1, 0
    if keras.config.backend() != "jax":
        raise ValueError(
            f"num_processes={num_processes}: runs over several processes use JAX (keras.distribution); run with "
            f"--backend jax, not {keras.config.backend()!r}"
        )
    import jax

    if jax.distributed.is_initialized():
        return jax.process_count(), jax.process_index()
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if process_id != 0:
        # JAX aborts the process, with no word of the address, when the coordinator cannot be reached.
        wait_for_coordinator(coordinator, JOIN_TIMEOUT_SECONDS)
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=JOIN_TIMEOUT_SECONDS,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS,
        )
    except jax.errors.JaxRuntimeError as error:  # DEADLINE_EXCEEDED, a refused connection...
        first_line = str(error).strip().splitlines()[0][:300]
        raise ValueError(
            f"process {process_id} of {num_processes} could not join the run at coordinator {coordinator!r} within "
            f"{JOIN_TIMEOUT_SECONDS} s ({first_line}); check --coordinator (reachable from every host, the same "
            "everywhere), that every process was started with the same --num-processes and its own --process-id"
        ) from None
    return num_processes, process_id


def wait_for_coordinator(coordinator, timeout):
    """Returns once `coordinator` (`HOST:PORT`) accepts a TCP connection; raises `ValueError` naming it after
    `timeout` seconds of refusals."""
    import socket
    import time

    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordinator={coordinator!r} is not HOST:PORT (e.g. 10.0.0.1:8476)")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            return
        except OSError as error:
            if time.monotonic() > deadline:
                raise ValueError(
                    f"coordinator={coordinator!r} did not answer within {timeout} s ({error.strerror or error}); "
                    "check --coordinator (process 0's host and port, reachable from every host) and that process 0 "
                    "is running"
                ) from None
            time.sleep(0.5)


def process_index():
    """This process's index in a multi-process run (0 alone, and on every backend but JAX)."""
    if keras.config.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def process_count():
    """How many processes run this run (1 alone, and on every backend but JAX)."""
    if keras.config.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def global_device_count():
    """The devices a run trains on, over all its processes (JAX: every device `keras.distribution` sees; 1 on the
    other backends, which train on one device)."""
    if keras.config.backend() != "jax":
        return 1
    import jax

    return jax.device_count()


def wait_for_all_processes(name):
    """A barrier: returns once every process of a multi-process run has reached `name` (at once when alone)."""
    if keras.config.backend() != "jax":
        return
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
