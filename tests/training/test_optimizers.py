import keras
import numpy as np
import pytest

from kbert.training import WarmupLinearDecay, create_optimizer


def test_warmup_then_linear_decay():
    schedule = WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=110)
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0], atol=1e-9)
    assert WarmupLinearDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupLinearDecay(1e-3, warmup_steps=20, total_steps=10)


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_no_weight_decay_on_bias_and_layer_norm(name):
    dense = keras.layers.Dense(4)
    norm = keras.layers.LayerNormalization()
    dense.build((None, 4))
    norm.build((None, 4))
    variables = [dense.kernel, dense.bias, norm.gamma, norm.beta]
    for variable in variables:
        variable.assign(np.ones(variable.shape, "float32"))
    optimizer = create_optimizer(name, learning_rate=0.1, weight_decay=0.5)
    optimizer.apply_gradients([(keras.ops.zeros(v.shape), v) for v in variables])
    # Zero gradients: only weight decay moves a variable.
    assert np.all(keras.ops.convert_to_numpy(dense.kernel) < 1.0)
    for variable in variables[1:]:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), 1.0)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer 'sgd'"):
        create_optimizer("sgd")


def test_gradient_accumulation_averages_batches_and_counts_updates():
    def train(accumulation, gradients):
        variable = keras.Variable(np.ones((3,), "float32"))
        optimizer = create_optimizer(
            "adamw", 0.1, warmup_steps=0, total_steps=4, gradient_accumulation_steps=accumulation
        )
        for gradient in gradients:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
        return keras.ops.convert_to_numpy(variable), int(keras.ops.convert_to_numpy(optimizer.iterations))

    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(3,)).astype("float32") for _ in range(4)]
    means = [(batches[0] + batches[1]) / 2, (batches[2] + batches[3]) / 2]
    accumulated, updates = train(2, batches)
    expected, _ = train(
        None, means
    )  # the learning rate at update u is the schedule's at u, not at batch 2u+1
    np.testing.assert_allclose(accumulated, expected, rtol=1e-5)
    assert updates == 2
