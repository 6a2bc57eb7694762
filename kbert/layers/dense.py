"""`Dense`: Keras' dense layer with the bias added inside the product where that is faster (`matmul_add`)."""

import keras

from kbert.backend import matmul_add


@keras.saving.register_keras_serializable(package="kbert")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` (same weights, config and quantization) computed with `kbert.backend.matmul_add`."""

    def call(self, inputs, training=None):
        if self.bias is None or self.quantization_mode is not None:
            return super().call(inputs, training=training)
        outputs = matmul_add(inputs, self.kernel, self.bias)
        return outputs if self.activation is None else self.activation(outputs)
