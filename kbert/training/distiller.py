"""`Distiller`: a frozen kbert teacher trains a smaller student of the same task, with plain `fit`.

The losses (all computed in float32):
- soft: the KL divergence from the teacher's to the student's output distribution, both softened by the
  temperature T and scaled by T^2 (Hinton et al.), over classes, tagged tokens or answer positions; for
  embedders the mean squared error (or 1 - cosine) between the embeddings;
- hard: the task's cross-entropy on the labels, mixed in as `(1 - alpha)` when `alpha < 1`;
- hidden (TinyBERT): the mean squared error between student hidden states (embeddings, then each block) and the
  teacher's mapped ones, through one learned projection when the widths differ;
- attention (TinyBERT/MiniLM): the KL divergence between the mapped blocks' attention distributions, per head when
  the head counts agree, else of the head averages.
Student block i (1-based) is mapped onto teacher block `layer_map[i - 1]`, by default the last of each group of k.
"""

import keras
from keras import ops

from kbert.backend import sparse_cross_entropy
from kbert.inputs import IGNORE_LABEL
from kbert.models import BertClassifier, BertEmbedder, BertQuestionAnswerer, BertTokenClassifier
from kbert.training.students import check_task_model, last_of_each_group, with_internals

EMBEDDING_LOSSES = ("mse", "cosine")
_LOG_FLOOR = 1e-12  # probabilities are clipped here before a log; masked keys are exactly 0 on both sides
_MASKED_LOGIT = -1e9


def _masked_mean(values, mask):
    mask = ops.cast(mask, "float32")
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def soft_kl(teacher_logits, student_logits, temperature, mask=None):
    """T^2 x KL(softmax(teacher / T) || softmax(student / T)) over the last axis, averaged over the rows (the
    rows where `mask` is 1). Zero when the logits agree."""
    teacher = ops.cast(teacher_logits, "float32") / temperature
    student = ops.cast(student_logits, "float32") / temperature
    teacher_log = ops.log_softmax(teacher, axis=-1)
    kl = ops.sum(ops.exp(teacher_log) * (teacher_log - ops.log_softmax(student, axis=-1)), axis=-1)
    kl = kl * temperature**2
    return ops.mean(kl) if mask is None else _masked_mean(kl, mask)


def cross_entropy(labels, logits, mask=None):
    """Sparse categorical cross-entropy from logits, averaged over the rows where `mask` is 1."""
    labels = ops.cast(labels, "int32")
    if mask is not None:
        # Ignored rows (label -100) gather a valid class; the mask drops them from the mean.
        labels = ops.where(ops.cast(mask, "bool"), labels, 0)
    per_row = sparse_cross_entropy(labels, logits)
    return ops.mean(per_row) if mask is None else _masked_mean(per_row, mask)


def hidden_mse(teacher_states, student_states, padding_mask):
    """Mean squared error between paired hidden states [batch, seq, dim], over real tokens and features."""
    mask = ops.cast(padding_mask, "float32")[:, :, None]
    losses = []
    for teacher, student in zip(teacher_states, student_states, strict=True):
        squared = ops.square(ops.cast(student, "float32") - ops.cast(teacher, "float32"))
        losses.append(ops.sum(squared * mask) / (ops.maximum(ops.sum(mask), 1.0) * ops.shape(squared)[-1]))
    return ops.mean(ops.stack(losses))


def attention_kl(teacher_attentions, student_attentions, padding_mask):
    """KL(teacher || student) between paired attention probabilities [batch, heads, query, key], per query row,
    averaged over heads and real query positions. Head counts that differ compare the heads' averages."""
    losses = []
    for teacher, student in zip(teacher_attentions, student_attentions, strict=True):
        teacher, student = ops.cast(teacher, "float32"), ops.cast(student, "float32")
        if teacher.shape[1] != student.shape[1]:
            teacher = ops.mean(teacher, axis=1, keepdims=True)
            student = ops.mean(student, axis=1, keepdims=True)
        log_ratio = ops.log(ops.maximum(teacher, _LOG_FLOOR)) - ops.log(ops.maximum(student, _LOG_FLOOR))
        kl = ops.sum(teacher * log_ratio, axis=-1)  # [batch, heads, query]
        mask = ops.broadcast_to(ops.cast(padding_mask, "float32")[:, None, :], ops.shape(kl))
        losses.append(_masked_mean(kl, mask))
    return ops.mean(ops.stack(losses))


def embedding_distance(teacher, student, kind="mse"):
    """Mean squared error, or mean (1 - cosine), between embeddings [batch, dim]."""
    teacher, student = ops.cast(teacher, "float32"), ops.cast(student, "float32")
    if kind == "mse":
        return ops.mean(ops.square(student - teacher))
    return ops.mean(1.0 - _cosine(teacher, student))


def _cosine(a, b):
    norms = ops.sqrt(ops.sum(ops.square(a), axis=-1)) * ops.sqrt(ops.sum(ops.square(b), axis=-1))
    return ops.sum(a * b, axis=-1) / ops.maximum(norms, 1e-12)


def _masked_logits(logits, padding_mask):
    return ops.where(ops.cast(padding_mask, "bool"), ops.cast(logits, "float32"), _MASKED_LOGIT)


def _check_pair(teacher, student, separate_inputs):
    check_task_model(teacher, "teacher")
    check_task_model(student, "student")
    if type(student) is not type(teacher):
        raise ValueError(
            f"the student is a {type(student).__name__} but the teacher a {type(teacher).__name__}; distil into "
            f"the same task (kbert.export.make_student(teacher, 'tiny') builds one)"
        )
    if getattr(student, "num_classes", None) != getattr(teacher, "num_classes", None):
        raise ValueError(
            f"the student has num_classes={student.num_classes}, the teacher {teacher.num_classes}; they must "
            f"predict the same labels"
        )
    if separate_inputs:
        if not isinstance(student, BertClassifier | BertEmbedder):
            raise ValueError(
                f"separate_inputs (a student vocabulary) tokenizes the text differently, so per-token outputs do "
                f"not line up; it works for BertClassifier and BertEmbedder, not {type(student).__name__}"
            )
        return
    for name in ("vocabulary_size", "num_segments"):
        if getattr(student.backbone.config, name) != getattr(teacher.backbone.config, name):
            raise ValueError(
                f"student {name}={getattr(student.backbone.config, name)} differs from the teacher's "
                f"{getattr(teacher.backbone.config, name)}; both read the same token ids, so it must match "
                f"(a student with its own vocabulary needs separate_inputs=True)"
            )


def _check_weights(temperature, alpha, output_weight, hidden_weight, attention_weight, separate_inputs):
    """Raises `ValueError` naming a temperature, share or loss weight out of range (see `Distiller`)."""
    if separate_inputs and (hidden_weight or attention_weight):
        raise ValueError(
            "hidden and attention losses compare the models token by token, but with separate_inputs the "
            "two tokenizations differ; set hidden_weight=0 and attention_weight=0"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (the soft loss's share), got {alpha!r}")
    for name, weight in [("output", output_weight), ("hidden", hidden_weight), ("attention", attention_weight)]:
        if not weight >= 0:
            raise ValueError(f"{name}_weight must be >= 0, got {weight!r}")
    if output_weight == hidden_weight == attention_weight == 0:
        raise ValueError("every loss weight is 0; set output_weight, hidden_weight or attention_weight > 0")


def _checked_layer_map(layer_map, teacher, student):
    """The teacher block (1-based) for each student block: `layer_map`, checked, or `last_of_each_group`."""
    teacher_layers, student_layers = teacher.backbone.config.num_layers, student.backbone.config.num_layers
    layer_map = [int(index) for index in (layer_map or last_of_each_group(teacher_layers, student_layers))]
    if len(layer_map) != student_layers or not all(1 <= index <= teacher_layers for index in layer_map):
        raise ValueError(
            f"layer_map={layer_map} must give {student_layers} teacher blocks (one per student block), each "
            f"in 1..{teacher_layers}"
        )
    return layer_map


class Distiller(keras.Model):
    """Trains `student` to imitate the frozen `teacher` (same task) with `fit`, on every backend.

    Args:
        teacher: a fine-tuned kbert task model (`BertClassifier`, `BertTokenClassifier`, `BertQuestionAnswerer`
            or `BertEmbedder`); frozen (`trainable = False`) and run without dropout.
        student: a smaller model of the same class (and `num_classes`), reading the same token ids; see
            `kbert.training.make_student` and `kbert.training.student_from_teacher`.
        temperature: T of the soft loss (> 0).
        alpha: the soft loss's share of the output loss; `1 - alpha` goes to the hard-label loss, which then
            needs labels (`y` of `fit`, as the task model takes them). 1.0 trains on unlabeled text.
            Embedders take no labels (alpha is not used).
        output_weight, hidden_weight, attention_weight: weights of the output loss (soft and hard), the
            hidden-state MSE and the attention KL. Hidden and attention need the explicit attention path, so
            they cost more when on. `output_weight=0` with the other two on is TinyBERT's general distillation.
        embedding_loss: "mse" or "cosine" (embedders).
        layer_map: the teacher block (1-based) for each student block; default `last_of_each_group`.
        separate_inputs: the student has its own tokenizer (e.g. a vocabulary learned on the task's text), so
            `x` is `{"teacher": inputs, "student": inputs}`, the same texts tokenized by each. Classifiers and
            embedders only, and no hidden or attention loss: their tokens do not line up.

    Data: `x` the models' inputs (`token_ids`, `segment_ids`, `padding_mask`), `y` the labels or None. With
    output losses only, `x` may instead be `{"student": inputs, "teacher_outputs": outputs}`: the teacher's
    outputs computed once (`teacher.predict`), so the epochs skip its forward pass (several times the
    student's cost for a small student); the losses are the same, as the teacher runs without dropout. Logged
    metrics: `soft_loss`, and as configured `hard_loss`, `accuracy` (the student's, on the labels),
    `teacher_agreement` (argmax agreement), `cosine` (embedders), `hidden_loss`, `attention_loss`.

    The distiller itself is not saved (it holds the teacher): save `distiller.student`, a plain kbert model.

    Example:
    ```python
    student = kbert.training.make_student(teacher, "tiny")
    distiller = kbert.training.Distiller(teacher, student, temperature=2.0, alpha=0.5, hidden_weight=1.0)
    distiller.compile(optimizer=keras.optimizers.AdamW(1e-4))
    distiller.fit(train_dataset, epochs=3)
    kbert.interop.save_kbert(distiller.student, "student")
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=2.0,
        alpha=0.5,
        output_weight=1.0,
        hidden_weight=0.0,
        attention_weight=0.0,
        embedding_loss="mse",
        layer_map=None,
        separate_inputs=False,
        **kwargs,
    ):
        _check_pair(teacher, student, separate_inputs)
        _check_weights(temperature, alpha, output_weight, hidden_weight, attention_weight, separate_inputs)
        if embedding_loss not in EMBEDDING_LOSSES:
            raise ValueError(f"embedding_loss={embedding_loss!r}; choose one of {EMBEDDING_LOSSES}")
        layer_map = _checked_layer_map(layer_map, teacher, student)
        super().__init__(**kwargs)
        teacher.trainable = False
        self.teacher, self.student = teacher, student
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.output_weight, self.hidden_weight = float(output_weight), float(hidden_weight)
        self.attention_weight, self.embedding_loss = float(attention_weight), embedding_loss
        self.layer_map = layer_map
        self.separate_inputs = separate_inputs
        self.is_embedder = isinstance(student, BertEmbedder)
        self.uses_labels = output_weight > 0 and alpha < 1 and not self.is_embedder

        wants = dict(hidden_states=hidden_weight > 0, attentions=attention_weight > 0)
        self.teacher_internals = with_internals(teacher, **wants)
        self.student_internals = with_internals(student, **wants)
        self.hidden_projection = self._projection(
            "hidden_projection", student.backbone.config.hidden_dim, teacher.backbone.config.hidden_dim,
            hidden_weight > 0,
        )  # fmt: skip
        self.embedding_projection = None
        if self.is_embedder:
            self.embedding_projection = self._projection(
                "embedding_projection", student.output.shape[-1], teacher.output.shape[-1], True
            )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self._logged_metrics()}
        self.built = True

    def _logged_metrics(self):
        """The names of the metrics `fit` logs, as configured."""
        names = ["soft_loss"] if self.output_weight > 0 else []
        names += ["hard_loss", "accuracy"] if self.uses_labels else []
        names.append("cosine" if self.is_embedder else "teacher_agreement")
        names += ["hidden_loss"] if self.hidden_weight > 0 else []
        names += ["attention_loss"] if self.attention_weight > 0 else []
        return names

    def _projection(self, name, student_width, teacher_width, needed):
        # A learned map from the student's width to the teacher's (TinyBERT's W_h); dropped after distillation.
        if not needed or student_width == teacher_width:
            return None
        projection = keras.layers.Dense(teacher_width, use_bias=False, name=name)
        projection.build((None, student_width))
        return projection

    def split_inputs(self, inputs):
        """(teacher inputs, student inputs): `inputs` twice, or its "teacher" and "student" parts; the teacher's
        are None when `inputs` carries precomputed "teacher_outputs"."""
        if isinstance(inputs, dict) and set(inputs) == {"student", "teacher_outputs"}:
            if self.hidden_weight or self.attention_weight:
                raise ValueError(
                    "precomputed teacher_outputs serve the output loss only; the hidden and attention losses "
                    "need the teacher run on the inputs: give x = {'teacher': ..., 'student': ...} or inputs"
                )
            return None, inputs["student"]
        if not self.separate_inputs:
            return inputs, inputs
        if not isinstance(inputs, dict) or set(inputs) != {"teacher", "student"}:
            keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                f"with separate_inputs, x must be {{'teacher': inputs, 'student': inputs}} (the same texts "
                f"tokenized by each model's tokenizer), got {keys}"
            )
        return inputs["teacher"], inputs["student"]

    def call(self, inputs, training=False):
        teacher_inputs, student_inputs = self.split_inputs(inputs)
        if teacher_inputs is None:
            teacher = {"outputs": inputs["teacher_outputs"]}
        else:
            teacher = self.teacher_internals(teacher_inputs, training=False)
        teacher = keras.tree.map_structure(ops.stop_gradient, teacher)
        return {"teacher": teacher, "student": self.student_internals(student_inputs, training=training)}

    def fit(self, x=None, y=None, **kwargs):
        # Checked before Keras traces a step: on JAX an error in the first step leaves the variables of every
        # model involved (the teacher too) emptied, as Keras 3.15 restores them only after a step succeeded.
        if hasattr(x, "element_spec"):  # a tf.data.Dataset of x or (x, y)
            spec = x.element_spec
            inputs, labels = (
                (spec[0], spec[1] if len(spec) > 1 else None) if isinstance(spec, tuple) else (spec, None)
            )
            self.check_batch(inputs, labels)
        elif isinstance(x, dict):  # arrays: checked once here, like the task models' own fit
            self.check_batch(x, y)
            teacher_inputs, student_inputs = self.split_inputs(x)
            if teacher_inputs is not None:
                self.teacher._check_inputs(teacher_inputs)
            self.student._check_inputs(student_inputs)
        return super().fit(x, y, **kwargs)

    def check_batch(self, x, y):
        """Raises `ValueError` for data of the wrong structure: inputs (see `split_inputs`) or labels."""
        self.split_inputs(x)
        if self.uses_labels and y is None:
            raise ValueError(
                f"alpha={self.alpha} mixes in the hard-label loss, but the data has no labels; give (x, y) or "
                f"set alpha=1.0 to distil on unlabeled text"
            )
        if self.is_embedder and y is not None:
            raise ValueError(
                "embedder distillation takes no labels (the teacher's embeddings are the target)"
            )
        keys = ("start_logits", "end_logits")
        if self.uses_labels and isinstance(self.student, BertQuestionAnswerer):
            if not isinstance(y, dict) or not all(key in y for key in keys):
                found = sorted(y) if isinstance(y, dict) else type(y).__name__
                raise ValueError(
                    f"question answering labels are y = {{'start_logits', 'end_logits'}}, got {found}"
                )

    def compile(self, optimizer="auto", loss=None, metrics=None, **kwargs):
        """As `keras.Model.compile`; the losses are built in. "auto" is AdamW(1e-4, weight decay 0.01)."""
        if loss not in (None, "auto") or metrics not in (None, "auto"):
            raise ValueError(
                "Distiller computes its own losses and metrics; call compile() without loss= and metrics="
            )
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(1e-4, weight_decay=0.01)
        super().compile(optimizer=optimizer, loss=None, metrics=None, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError("Distiller takes no sample weights; give (x, y) or x alone")
        terms, metrics = self.loss_terms(x, y, y_pred)
        for name, value in {**terms, **metrics}.items():
            self.trackers[name].update_state(value)
        loss = 0.0
        if "soft_loss" in terms:
            output_loss = terms["soft_loss"]
            if self.uses_labels:
                output_loss = self.alpha * output_loss + (1.0 - self.alpha) * terms["hard_loss"]
            loss = loss + self.output_weight * output_loss
        if "hidden_loss" in terms:
            loss = loss + self.hidden_weight * terms["hidden_loss"]
        if "attention_loss" in terms:
            loss = loss + self.attention_weight * terms["attention_loss"]
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def loss_terms(self, x, y, predictions):
        """The unweighted loss terms and the metrics, each a float32 scalar: (`terms`, `metrics`).

        `predictions` is `distiller(x)`; call it with `training=False` to compare the models without dropout.
        """
        self.check_batch(x, y)
        teacher, student = predictions["teacher"], predictions["student"]
        mask = self.split_inputs(x)[1]["padding_mask"]  # separate inputs: used by no term (see __init__)
        terms, metrics = {}, {}
        if self.is_embedder:
            student_embedding = student["outputs"]
            if self.embedding_projection is not None:
                student_embedding = self.embedding_projection(ops.cast(student_embedding, "float32"))
            if self.output_weight > 0:
                terms["soft_loss"] = embedding_distance(
                    teacher["outputs"], student_embedding, self.embedding_loss
                )
            metrics["cosine"] = ops.mean(
                _cosine(ops.cast(teacher["outputs"], "float32"), ops.cast(student_embedding, "float32"))
            )
        else:
            self._output_terms(teacher["outputs"], student["outputs"], y, mask, terms, metrics)
        if self.hidden_weight > 0:
            student_states = student["hidden_states"]
            if self.hidden_projection is not None:
                student_states = [self.hidden_projection(ops.cast(s, "float32")) for s in student_states]
            teacher_states = [teacher["hidden_states"][index] for index in [0, *self.layer_map]]
            terms["hidden_loss"] = hidden_mse(teacher_states, student_states, mask)
        if self.attention_weight > 0:
            teacher_attentions = [teacher["attentions"][index - 1] for index in self.layer_map]
            terms["attention_loss"] = attention_kl(teacher_attentions, student["attentions"], mask)
        return terms, metrics

    def _output_terms(self, teacher, student, y, mask, terms, metrics):
        if isinstance(self.student, BertQuestionAnswerer):
            keys = ("start_logits", "end_logits")
            pairs = [(_masked_logits(teacher[k], mask), _masked_logits(student[k], mask)) for k in keys]
            labels = [None, None] if y is None else [y[k] for k in keys]
            row_mask = None
        else:
            pairs, labels = [(teacher, student)], [y]
            is_tagger = isinstance(self.student, BertTokenClassifier)
            row_mask = mask if is_tagger else None
        if self.output_weight > 0:
            terms["soft_loss"] = ops.mean(
                ops.stack([soft_kl(t, s, self.temperature, row_mask) for t, s in pairs])
            )
        agreement = [
            ops.cast(ops.equal(ops.argmax(t, axis=-1), ops.argmax(s, axis=-1)), "float32") for t, s in pairs
        ]
        metrics["teacher_agreement"] = ops.mean(
            ops.stack([ops.mean(a) if row_mask is None else _masked_mean(a, row_mask) for a in agreement])
        )
        if not self.uses_labels:
            return
        hard, correct = [], []
        for (_, s), label in zip(pairs, labels, strict=True):
            label_mask = row_mask
            if row_mask is not None:  # taggers: label -100 marks padding and non-first word pieces
                label_mask = ops.logical_and(
                    ops.cast(row_mask, "bool"), ops.not_equal(label, IGNORE_LABEL)
                )
            hard.append(cross_entropy(label, s, label_mask))
            hit = ops.cast(ops.equal(ops.argmax(s, axis=-1), ops.cast(label, "int32")), "float32")
            correct.append(ops.mean(hit) if label_mask is None else _masked_mean(hit, label_mask))
        terms["hard_loss"] = ops.mean(ops.stack(hard))
        metrics["accuracy"] = ops.mean(ops.stack(correct))

    def get_config(self):
        raise ValueError(
            "a Distiller is not saved (it holds the teacher); save distiller.student instead, e.g. "
            "kbert.interop.save_kbert(distiller.student, folder)"
        )

    def save(self, *args, **kwargs):
        self.get_config()
