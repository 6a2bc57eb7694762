"""`TrainingCheckpoint` on each backend: resume state (dropout's random state included), settings checks,
a finished run, and a NaN loss that keeps the last good checkpoint."""

import json

import keras
import numpy as np
import pytest

from kbert.training.checkpoints import TrainingCheckpoint

X = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
Y = X @ np.linspace(-1, 1, 8).astype("float32")[:, None]


def _model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dropout(0.5), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _fit(model, checkpoint, epochs):
    return model.fit(X, Y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=[checkpoint])


def test_resumed_fit_equals_an_uninterrupted_one(tmp_path):
    whole = _model()
    _fit(whole, TrainingCheckpoint(tmp_path / "whole", steps_per_epoch=4), epochs=4)

    first = _model()
    _fit(first, TrainingCheckpoint(tmp_path / "split", steps_per_epoch=4), epochs=2)
    resumed = _model()  # a new process would build the model again from the same seed
    checkpoint = TrainingCheckpoint(tmp_path / "split", steps_per_epoch=4)
    history = _fit(resumed, checkpoint, epochs=4)

    assert checkpoint.restored["epoch"] == 2 and checkpoint.restored["batches"] == 8
    assert len(history.history["loss"]) == 2 and len(checkpoint.history["loss"]) == 4
    for expected, actual in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-6)
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 16
    state = json.loads((tmp_path / "split" / "ckpt-000000016.json").read_text())
    assert state["weights"] == "ckpt-000000016.weights.h5" and state["batches"] == 16
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == [
        "ckpt-000000012.json",
        "ckpt-000000012.weights.h5",
        "ckpt-000000016.json",
        "ckpt-000000016.weights.h5",
    ]

    # A finished run restores its last state and trains no more.
    again = _model()
    history = _fit(again, TrainingCheckpoint(tmp_path / "split", steps_per_epoch=4), epochs=4)
    assert history.history == {}
    for expected, actual in zip(whole.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    _fit(_model(), TrainingCheckpoint(tmp_path, 4, settings={"lr": 0.01, "steps": 8}), epochs=1)
    with pytest.raises(ValueError, match="lr was 0.01, now 0.1; rerun with the same settings"):
        TrainingCheckpoint(tmp_path, 4, settings={"lr": 0.1, "steps": 8}).restore(_model())


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def batches():
        for step in range(100):
            x = X[:4] if step < 4 else np.full_like(X[:4], np.nan)  # NaN from the second epoch on
            yield x, Y[:4]

    model = _model()
    with pytest.raises(FloatingPointError, match=r"loss is nan in epoch 2 .*after 4 batches\) is kept"):
        model.fit(
            batches(),
            steps_per_epoch=4,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[TrainingCheckpoint(tmp_path, 4)],
        )
    restored = _model()
    state = TrainingCheckpoint(tmp_path, 4).restore(restored)
    assert state["batches"] == 4
    assert all(np.all(np.isfinite(weight)) for weight in restored.get_weights())


@pytest.mark.parametrize("damage", ["truncated weights", "malformed state"])
def test_an_unreadable_last_checkpoint_falls_back_to_the_one_before(tmp_path, damage, caplog):
    _fit(_model(), TrainingCheckpoint(tmp_path, 4), epochs=3)
    before = _model()
    _fit(before, TrainingCheckpoint(tmp_path / "two", 4), epochs=2)  # an uninterrupted run of 8 batches
    if damage == "truncated weights":
        bad = tmp_path / "ckpt-000000012.weights.h5"
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        bad = tmp_path / "ckpt-000000012.json"
        bad.write_text('{"epoch": 3, "batc')
    restored = _model()
    with caplog.at_level("WARNING", logger="kbert"):
        state = TrainingCheckpoint(tmp_path, 4).restore(restored)
    assert state["batches"] == 8
    assert bad.name in caplog.text
    for wanted, actual in zip(before.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_allclose(actual, wanted, atol=1e-6)

    # With no readable checkpoint left the run is refused, never started over.
    older = tmp_path / "ckpt-000000008.weights.h5"
    older.write_bytes(older.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"no checkpoint in .* can be read .*ckpt-000000008.weights.h5"):
        TrainingCheckpoint(tmp_path, 4).restore(_model())
