"""The four fine-tuning tasks of `kbert.training.finetuning`: what each reads, builds, trains on and scores.

Each task turns its files into packed windows (`kbert.data.windows`), builds its model from the pretrained
checkpoint, and scores the model's per-window outputs with its field's metric (`kbert.training.metrics`):

| task | files | model | dev metric (early stopping) |
|---|---|---|---|
| classify | JSONL/CSV `text`, `text_pair`?, `label` | `BertClassifier` | `macro_f1` (and `accuracy`) |
| tag | CoNLL-2003 (word first, tag last) | `BertTokenClassifier` | entity `f1` (and `precision`, `recall`) |
| qa | SQuAD v1.1 / v2.0 JSON | `BertQuestionAnswerer` | `f1` (and `exact_match`), in percent |
| embed | JSONL/CSV `text`, `text_pair`, `score` or `query`, `positive` | `BertEmbedder` | `spearman` or `retrieval_accuracy` |
"""

import numpy as np

from kbert.data import records as readers
from kbert.data import windows
from kbert.models import BertClassifier, BertEmbedder, BertQuestionAnswerer, BertTokenClassifier
from kbert.training import metrics
from kbert.training.losses import CosineSimilarityLoss, InBatchNegativesLoss

TAG_PREFIXES = ("B-", "I-", "E-", "S-")


class FinetuningTask:
    """One kind of fine-tuning. The driver calls, in order: `read` and `learn` on the training file, `read` and
    `check` on the dev and test files, `build`, `training_data`, then `prepare` and `evaluate` per evaluation file.

    `evaluate` gets `predict(inputs)`: the model's outputs for packed windows [windows, ...], in input order.
    """

    metric = ""  # the dev metric early stopping watches (higher is better)
    model_class = None
    fit_metrics = "auto"  # what `compile` reports during `fit`
    uses_pooler = False  # the pooled [CLS] output; otherwise the pooler is frozen (it would get no gradient)

    def __init__(self, config):
        self.config = config
        self.labels = None  # label names written to labels.json (classify, tag)

    def read(self, path):
        raise NotImplementedError

    def learn(self, records):
        """Takes what the task needs from the training records (label names...)."""

    def check(self, split, path, records):
        """Raises `ValueError` when evaluation records do not fit the training ones."""

    def build(self):
        return self.model_class.from_preset(self.config.init, **self.model_kwargs())

    def model_kwargs(self):
        return {}

    def loss(self):
        return "auto"

    def training_data(self, tokenizer, records):
        """`(inputs, labels)` for `kbert.data.batching.batches`."""
        raise NotImplementedError

    def prepare(self, tokenizer, records):
        """The windows `evaluate` needs (computed once per evaluation file)."""
        raise NotImplementedError

    def evaluate(self, records, prepared, predict):
        raise NotImplementedError

    def _check_labels(self, split, path, found):
        unseen = sorted(set(found) - set(self.labels))
        if unseen:
            raise ValueError(
                f"the {split} file {path!r} has label(s) never seen in training: {unseen[:10]}; add examples of "
                f"them to the training file or remove them"
            )


class ClassifyTask(FinetuningTask):
    metric = "macro_f1"
    model_class = BertClassifier
    uses_pooler = True

    def read(self, path):
        return readers.read_records(path)

    def learn(self, records):
        self.labels = sorted({str(r["label"]) for r in records})
        self.label_ids = {name: index for index, name in enumerate(self.labels)}

    def check(self, split, path, records):
        self._check_labels(split, path, {str(r["label"]) for r in records})

    def model_kwargs(self):
        return {"num_classes": len(self.labels)}

    def _windows(self, tokenizer, records):
        pairs = [r["text_pair"] for r in records] if any(r["text_pair"] for r in records) else None
        config = self.config
        return windows.encode_texts(
            tokenizer,
            [r["text"] for r in records],
            pairs,
            config.seq_len,
            config.long_text,
            config.doc_stride,
        )

    def training_data(self, tokenizer, records):
        # With long_text "mean" or "max" every window of a long text is a training example with the text's label.
        inputs, example = self._windows(tokenizer, records)
        labels = np.asarray([self.label_ids[str(r["label"])] for r in records], np.int32)
        return inputs, labels[example]

    def prepare(self, tokenizer, records):
        return self._windows(tokenizer, records)

    def evaluate(self, records, prepared, predict):
        inputs, example = prepared
        logits = windows.aggregate(predict(inputs), example, len(records), self.config.long_text)
        truth = [self.label_ids[str(r["label"])] for r in records]
        return metrics.classification_metrics(truth, logits.argmax(-1), len(self.labels))


class TagTask(FinetuningTask):
    metric = "f1"
    model_class = BertTokenClassifier
    fit_metrics = None  # token accuracy over padding and ignored pieces would mislead

    def read(self, path):
        return readers.read_conll(path)

    def learn(self, records):
        self.labels = sorted({tag for sentence in records for tag in sentence["tags"]})
        bad = [tag for tag in self.labels if tag != "O" and tag[:2] not in TAG_PREFIXES]
        if bad:
            raise ValueError(
                f"tag(s) {bad[:10]} are not BIO/IOB tags; --task tag scores entities and expects O, B-TYPE and "
                f"I-TYPE (or E-/S-) in the last column"
            )
        self.tag_ids = {name: index for index, name in enumerate(self.labels)}

    def check(self, split, path, records):
        self._check_labels(split, path, {tag for sentence in records for tag in sentence["tags"]})

    def model_kwargs(self):
        return {"num_classes": len(self.labels)}

    def training_data(self, tokenizer, records):
        inputs, labels, _ = windows.encode_tags(tokenizer, records, self.config.seq_len, self.tag_ids)
        return inputs, labels

    def prepare(self, tokenizer, records):
        inputs, _, positions = windows.encode_tags(tokenizer, records, self.config.seq_len)
        return inputs, positions

    def evaluate(self, records, prepared, predict):
        inputs, positions = prepared
        predicted = windows.word_tags(predict(inputs), positions, self.labels)
        return metrics.entity_metrics([sentence["tags"] for sentence in records], predicted)


class QuestionAnsweringTask(FinetuningTask):
    metric = "f1"
    model_class = BertQuestionAnswerer
    fit_metrics = None

    def read(self, path):
        return readers.read_squad(path)

    def learn(self, records):
        # SQuAD v2.0 training data teaches the model to point at [CLS] for "no answer"; then it may predict one.
        self.allow_no_answer = any(q["is_impossible"] for q in records)

    def _windows(self, tokenizer, records):
        return windows.encode_squad(tokenizer, records, self.config.seq_len, self.config.doc_stride)

    def training_data(self, tokenizer, records):
        squad = self._windows(tokenizer, records)
        return squad.inputs, {"start_logits": squad.start_positions, "end_logits": squad.end_positions}

    def prepare(self, tokenizer, records):
        return self._windows(tokenizer, records)

    def evaluate(self, records, prepared, predict):
        outputs = predict(prepared.inputs)
        answers = windows.best_answers(
            records,
            prepared,
            outputs["start_logits"],
            outputs["end_logits"],
            max_answer_length=self.config.max_answer_length,
            allow_no_answer=self.allow_no_answer,
        )
        version2 = self.allow_no_answer or any(q["is_impossible"] for q in records)
        return metrics.squad_metrics(answers, records, version2=version2)


class EmbedTask(FinetuningTask):
    model_class = BertEmbedder
    fit_metrics = None

    def read(self, path):
        return readers.read_text_pairs(path)

    @staticmethod
    def _kind(records):
        return "retrieval" if records[0]["score"] is None else "score"

    def learn(self, records):
        self.kind = self._kind(records)
        self.metric = "spearman" if self.kind == "score" else "retrieval_accuracy"

    def check(self, split, path, records):
        if self._kind(records) != self.kind:
            raise ValueError(
                f"the {split} file {path!r} holds {self._kind(records)} pairs but the training file {self.kind} pairs; "
                f"use one kind for all files"
            )

    def model_kwargs(self):
        return {"pooling": "mean", "normalize": True}

    def loss(self):
        return CosineSimilarityLoss() if self.kind == "score" else InBatchNegativesLoss()

    def training_data(self, tokenizer, records):
        # Each side's first window: the pairs of a batch must stay aligned (long texts are aggregated at evaluation).
        sides = [
            windows.encode_texts(tokenizer, [r[key] for r in records], seq_len=self.config.seq_len)[0]
            for key in ("text", "text_pair")
        ]
        inputs = {key: np.stack([side[key] for side in sides], axis=1) for key in sides[0]}  # [pairs, 2, seq]
        scores = [r["score"] if r["score"] is not None else 0.0 for r in records]
        return inputs, np.asarray(scores, np.float32)

    def prepare(self, tokenizer, records):
        config = self.config
        return [
            windows.encode_texts(
                tokenizer,
                [r[key] for r in records],
                None,
                config.seq_len,
                config.long_text,
                config.doc_stride,
            )
            for key in ("text", "text_pair")
        ]

    def evaluate(self, records, prepared, predict):
        first, second = (
            windows.aggregate(predict(inputs), example, len(records), self.config.long_text)
            for inputs, example in prepared
        )
        if self.kind == "retrieval":
            accuracy = metrics.retrieval_accuracy(first, second, [r["text_pair"] for r in records])
            return {"retrieval_accuracy": accuracy}
        norms = np.linalg.norm(first, axis=-1) * np.linalg.norm(second, axis=-1)
        cosine = np.sum(first * second, axis=-1) / np.maximum(norms, 1e-12)
        return {"spearman": metrics.spearman([r["score"] for r in records], cosine)}


TASKS = {"classify": ClassifyTask, "tag": TagTask, "qa": QuestionAnsweringTask, "embed": EmbedTask}
