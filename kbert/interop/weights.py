"""Assigning a foreign checkpoint's arrays to a kbert model's weights, through a name table.

Every weight is checked before any is assigned, so a bad checkpoint raises an error and never leaves a half-loaded
model. Backbone weights must all be present with the right shapes; a task head (or the pooler) that the
checkpoint lacks, or holds with other shapes, is freshly initialised with a log line.
"""

import logging

import numpy as np

from kbert.interop.tables import HUGGINGFACE_IGNORED, to_kbert

logger = logging.getLogger("kbert")

# The optional weight groups (first part of a variable path) and how a log line names them.
HEADS = {
    "mlm_head": "masked-LM head",
    "pair_head": "NSP/SOP head",
    "logits": "classifier head",
    "span_head": "span (QA) head",
    "pooler": "pooler",
}


def assign_weights(model, arrays, table, source):
    """Checks every weight of `model` against `arrays` (foreign names, via `table`), then assigns them.

    Raises:
        ValueError: checkpoint names the table does not know (listed), backbone weights missing or of other
            shapes; nothing is assigned then.
    """
    _check_known(arrays, table, source)
    updates, fresh = _matched_weights(model, arrays, table, source)
    for group, pairs in updates.items():
        if group in fresh:
            continue  # a head loaded only in part is not loaded at all
        for variable, value in pairs:
            variable.assign(np.asarray(value, dtype=variable.dtype))
    for group in sorted(fresh):
        logger.warning("kbert: %s freshly initialised (not in %s)", HEADS[group], source)
    loaded = sorted(HEADS[group] for group in updates if group in HEADS and group not in fresh)
    logger.info("kbert: loaded the backbone%s from %s", "".join(f", {h}" for h in loaded), source)


def _check_known(arrays, table, source):
    """Raises `ValueError` listing checkpoint names the table does not know."""
    unknown = sorted(
        name for name in arrays if not table.knows_foreign(name) and not HUGGINGFACE_IGNORED.match(name)
    )
    if unknown:
        raise ValueError(f"{source!r} has weights kbert does not know (not a BERT checkpoint?): {unknown[:20]}")


def _matched_weights(model, arrays, table, source):
    """`({group: [(variable, value)]}, fresh groups)`; raises `ValueError` for missing or misshapen backbone
    weights."""
    updates, missing, mismatched, fresh, seen = {}, [], [], set(), set()
    for variable in model.weights:
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        group = variable.path.split("/")[0]
        optional = group in HEADS
        mapped = table.to_foreign(variable.path)
        if mapped is None and not optional:
            raise ValueError(f"kbert variable {variable.path!r} has no row in the name table")
        if mapped is None or mapped[0] not in arrays:
            if optional:
                fresh.add(group)  # the format has no such head (KerasHub backbone presets), or this one lacks it
            else:
                missing.append(mapped[0])
            continue
        name, transform = mapped
        value = _to_shape(arrays[name], transform, tuple(variable.shape))
        if tuple(value.shape) == tuple(variable.shape):
            updates.setdefault(group, []).append((variable, value))
        elif optional:
            fresh.add(group)
        else:
            mismatched.append(f"{name} {tuple(arrays[name].shape)} vs {variable.path} {tuple(variable.shape)}")
    if missing or mismatched:
        problems = [f"missing weights {missing[:20]}"] if missing else []
        problems += [f"shape mismatches {mismatched[:20]}"] if mismatched else []
        raise ValueError(f"{source!r} does not fit this model: " + "; ".join(problems))
    return updates, fresh


def _to_shape(value, transform, shape):
    """The array in kbert's layout, or as it is when the transform does not fit (reported as a mismatch)."""
    try:
        return to_kbert(value, transform, shape)
    except ValueError:
        return value
