"""The input contract every kbert model keeps (a low floor: the data pipelines, the models and the export read it).

Models take a dict of int32 `[batch, sequence]` arrays named `INPUT_KEYS`: word-piece ids, segment ids (0 for the
first text, 1 for the second of a pair) and a padding mask (1 on real tokens, 0 on padding). Token-level labels
equal to `IGNORE_LABEL` (Hugging Face's convention: padding, and the second and later pieces of a word) count in
no loss or metric.
"""

INPUT_KEYS = ("token_ids", "segment_ids", "padding_mask")
IGNORE_LABEL = -100
