"""Per-layer mapping (gen.perf.mapping): the best per layer beats one uniform tiling and the
compiler's, every mapping fits the core, and the gain is reported honestly."""

import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.perf.mapping import (
    best_mapping, candidates, mapping_gain, optimize, uniform_mapping)
from chrysalis.gen.spec.networks import Network, conv, get_network, mlp
from chrysalis.gen.perf import network_cost
from chrysalis.gen.perf.layer import fits

CONFIG = with_overrides(PRESETS["default"], {"pe.weight_words": 256, "pe.act_words": 256})


def small_cnn():
    a, size = conv("c1", 3, 16, 3, 8)
    b, size = conv("c2", 16, 32, 3, size, stride=2)
    return Network("small-cnn", (a, b, mlp([32 * size * size, 10]).layers[0]), 10, "test")


def test_candidates_fit_and_the_best_is_the_fastest():
    net = small_cnn()
    for i, layer in enumerate(net.layers):
        cands = candidates(CONFIG, layer, 4)
        assert cands and all(fits(CONFIG, layer, 4, m) is None for m in cands)
        best, tried = best_mapping(CONFIG, net, i, 4)
        assert tried == len(cands)


def test_per_layer_is_at_least_as_fast_as_uniform_and_compiler():
    net = small_cnn()
    g = mapping_gain(CONFIG, net, 4)
    assert g["per_layer_cycles"] <= g["uniform_cycles"]
    assert g["per_layer_cycles"] <= g["default_cycles"]
    assert g["gain"] >= 1 and g["gain_over_default"] >= 1
    mappings, _ = optimize(CONFIG, net, 4)
    assert network_cost(CONFIG, net, 4, mappings=mappings)["cycles"] == g["per_layer_cycles"]
    uniform, cycles, evaluated = uniform_mapping(CONFIG, net, 4)
    assert evaluated > 1 and cycles == g["uniform_cycles"]


def test_resident_network_keeps_whole_layers():
    mappings, _ = optimize(PRESETS["default"], get_network("digits-mlp"), 8)
    assert [(m.tm, m.tn) for m in mappings] == [(32, 65), (10, 33)]


def test_model_parallel_maps_each_cores_rows():
    config = with_overrides(PRESETS["default"], {"cluster.cores": 4})
    mappings, _ = optimize(config, get_network("mnist-500x3"), 16, "model")
    assert max(m.tm for m in mappings) <= 125        # 500 rows over four cores


def test_vgg_layers_map_within_the_command_fields():
    """A large convolution (50176 output pixels per image) still maps: every tile within
    the 16-bit command fields and the banks."""
    net = get_network("vgg16")
    layer = net.layers[1]
    cands = candidates(PRESETS["default"], layer, 2)
    assert cands and all(max(m.tm, m.tn, m.tb) <= 0xFFFF for m in cands)
    assert all(fits(PRESETS["default"], layer, 2, m) is None for m in cands)


def test_partition_across_cores_beats_both_uniform_splits():
    from chrysalis.gen.perf.mapping import partition
    config = with_overrides(PRESETS["default"], {"cluster.cores": 4})
    out = partition(config, get_network("mnist-500x3"), 8)
    assert len(out["splits"]) == 4 and set(out["splits"]) <= {"model", "data"}
    assert out["cycles"] <= min(out["model_cycles"], out["data_cycles"])
    assert out["gain"] >= 1
    with pytest.raises(ValueError, match="multiple of cluster.cores"):
        partition(config, get_network("mnist-500x3"), 6)
    with pytest.raises(ValueError, match="cluster.cores >= 2"):
        partition(PRESETS["default"], get_network("mnist-500x3"), 8)
