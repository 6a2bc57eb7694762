import pytest

from kbert import BertConfig

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize(
    "name, layers, hidden",
    [
        ("tiny", 2, 128),
        ("mini", 4, 256),
        ("small", 4, 512),
        ("medium", 8, 512),
        ("base", 12, 768),
        ("large", 24, 1024),
        ("L4_H256", 4, 256),
        ("L12_H768", 12, 768),
    ],
)
def test_named_sizes(name, layers, hidden):
    config = BertConfig.named(name)
    assert (config.num_layers, config.hidden_dim) == (layers, hidden)
    assert config.num_heads == hidden // 64
    assert config.intermediate_dim == 4 * hidden


def test_grid_has_the_24_compact_berts():
    grid = [name for name in BertConfig.names() if name.startswith("L")]
    assert len(grid) == 24
    for name in grid:
        BertConfig.named(name)


@pytest.mark.parametrize("name", ["L3_H256", "L4_H300", "L14_H128", "huge", "l4_h256"])
def test_unknown_names_are_refused(name):
    with pytest.raises(ValueError, match="unknown config name"):
        BertConfig.named(name)


def test_overrides_and_json_round_trip(tmp_path):
    config = BertConfig.named("mini", vocabulary_size=1234, position_embedding="sinusoidal", dropout=0.0)
    assert BertConfig.from_json(config.to_json()) == config
    path = tmp_path / "config.json"
    config.to_json(path)
    assert BertConfig.from_json(path) == config
    assert BertConfig.from_dict(config.to_dict()) == config


def test_defaults_are_bert_base():
    config = BertConfig()
    assert (config.vocabulary_size, config.num_layers, config.hidden_dim, config.num_heads) == (
        30522,
        12,
        768,
        12,
    )
    assert (config.layer_norm_epsilon, config.initializer_range, config.activation) == (1e-12, 0.02, "gelu")


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(hidden_dim=100, num_heads=3), "num_heads=3 does not divide hidden_dim=100"),
        (dict(num_layers=0), "num_layers must be a positive integer"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(position_embedding="rotary"), "position_embedding='rotary'"),
    ],
)
def test_bad_fields_name_the_value(fields, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**fields)


def test_unknown_json_field_is_named():
    with pytest.raises(ValueError, match="hidden_size"):
        BertConfig.from_dict({"hidden_size": 768})
