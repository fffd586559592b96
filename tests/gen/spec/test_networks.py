"""Built-in layer tables (gen.spec.networks): shapes and sizes that can be checked against the
published networks."""

import pytest

from chrysalis.gen.spec.networks import Layer, NETWORKS, conv, get_network, mlp


def forward_macs(network):
    return sum(l.m * l.n * l.columns for l in network.layers)


def test_vgg16_imagenet_has_the_published_size():
    net = get_network("vgg16")
    assert [l.kind for l in net.layers] == ["conv"] * 13 + ["fc"] * 3
    assert net.weights == 138_357_544           # VGG-16's parameters, biases included
    # 15.47 G multiply-accumulates per image forward (the bias adds 0.1%).
    assert forward_macs(net) == pytest.approx(15.47e9, rel=0.005)
    assert (net.layers[0].m, net.layers[0].n, net.layers[0].columns) == (64, 28, 224 * 224)
    assert net.layers[-3].n == 512 * 7 * 7 + 1 and net.classes == 1000


def test_resnet18_has_the_published_size():
    net = get_network("resnet18")
    # 11,689,512 parameters less batch normalisation's 9,600.
    assert net.weights == 11_679_912
    assert forward_macs(net) == pytest.approx(1.82e9, rel=0.01)
    assert sum(1 for l in net.layers if l.name.endswith("proj")) == 3
    assert net.layers[0].columns == 112 * 112 and net.layers[-1].n == 513


def test_cifar10_shapes():
    vgg, res = get_network("vgg16-cifar10"), get_network("resnet18-cifar10")
    assert vgg.classes == res.classes == 10
    assert vgg.layers[0].columns == 32 * 32 and vgg.layers[-1].n == 513
    assert res.layers[0].n == 27 and res.layers[-2].columns == 4 * 4


def test_layer_macs_count_forward_dx_and_dw_only():
    layer = conv("c", 3, 8, 3, 6)[0]
    assert (layer.m, layer.n, layer.columns) == (8, 28, 36)
    product = 8 * 28 * 36 * 4
    # CATERPILLAR's count: forward, dX and dW; the update is not a MAC.
    assert layer.macs(4) == 3 * product
    assert layer.macs(4, first=True) == 2 * product
    # The array's work with a separate update pass adds one operation per weight.
    assert layer.step_ops(4) == 3 * product + 8 * 28
    assert layer.step_ops(4, first=True) == 2 * product + 8 * 28
    net = mlp([64, 32, 10])
    # Forward and dW for both layers (bias as a weight column), dX for the second only.
    assert net.macs(8) == 32 * 65 * 2 * 8 + 10 * 33 * 3 * 8


def test_names_and_errors():
    assert set(NETWORKS) >= {"vgg16", "vgg16-cifar10", "resnet18", "resnet18-cifar10",
                             "digits-mlp", "mnist-500x3"}
    assert get_network("784-500-10").layers[0].n == 785
    with pytest.raises(ValueError, match="network must be one of .*, not 'alexnet'"):
        get_network("alexnet")
    with pytest.raises(ValueError, match="m must be a positive integer, not 0"):
        Layer("x", 0, 3)
    with pytest.raises(ValueError, match="does not fit"):
        conv("c", 3, 8, 7, 2, pad=0)
