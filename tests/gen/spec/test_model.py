"""Trainable network descriptions: shape inference, the built-in models and clear errors."""

import pytest

from chrysalis.gen.spec.model import (MODELS, Conv2d, Dense, Flatten, Model, ReLU, digits_cnn,
                                      get_model, mlp_model)


def test_digits_cnn_shapes():
    model = digits_cnn()
    assert model.shapes == ((1, 8, 8), (8, 8, 8), (8, 8, 8), (16, 4, 4), (16, 4, 4), (256,),
                            (10,))
    assert model.weight_shapes == ((8, 10), (16, 73), (10, 257))
    assert [t.relu for t in model.trainable] == [True, True, False]
    assert model.classes == 10 and model.input_features == 64
    assert not model.is_mlp


def test_macs_count_forward_dx_dw():
    model = digits_cnn()
    # conv1 (no dX): 8*10*64 per sample twice; conv2: 16*73*16 three times; dense 10*257.
    expected = 2 * 8 * 10 * 64 + 3 * 16 * 73 * 16 + 3 * 10 * 257
    assert model.macs(1) == expected and model.macs(8) == 8 * expected


def test_mlp_is_expressible():
    model = mlp_model((64, 32, 10))
    assert model.is_mlp and model.mlp_sizes == (64, 32, 10)
    assert model.weight_shapes == ((32, 65), (10, 33))
    assert get_model("digits-mlp").mlp_sizes == (64, 32, 10)
    assert set(MODELS) >= {"digits-cnn", "digits-mlp"}


def test_stride_and_padding_shapes():
    assert Conv2d(3, 4, 3, stride=2, pad=0).output_shape((3, 9, 7)) == (4, 4, 3)
    assert Conv2d(3, 4, 5, stride=1, pad=2).output_shape((3, 6, 6)) == (4, 6, 6)


@pytest.mark.parametrize("build, message", [
    (lambda: Model("m", (1, 8, 8), (Conv2d(2, 4, 3), Flatten(), Dense(144, 10))),
     "c_in must be the 1 channels of its input, not 2"),
    (lambda: Model("m", (64,), (ReLU(), Dense(64, 10))), "a ReLU must follow"),
    (lambda: Model("m", (1, 8, 8), (Conv2d(1, 4, 3),)), "the last layer must be a Dense"),
    (lambda: Model("m", (1, 8, 8), (Dense(64, 10),)), "put a Flatten before it"),
    (lambda: Model("m", (64,), (Conv2d(1, 4, 3), Flatten(), Dense(4, 10))),
     "Conv2d needs an image"),
    (lambda: Model("m", (1, 2, 2), (Conv2d(1, 4, 3), Flatten(), Dense(4, 10))),
     "does not fit a 2x2 input"),
    (lambda: Model("m", (64,), (Dense(63, 10),)), "n_in must be the 64 features"),
    (lambda: Model("m", (0, 8), (Dense(1, 10),)), "input_shape must be"),
    (lambda: Model("m", (64,), ()), "layers must not be empty"),
    (lambda: Conv2d(1, 4, 3, stride=0), "stride must be a positive integer, not 0"),
    (lambda: Conv2d(1, 4, 3, pad=3), "pad must be less than the kernel size 3, not 3"),
    (lambda: Dense(True, 10), "n_in must be a positive integer, not True"),
    (lambda: mlp_model((64,)), "sizes must be at least two"),
    (lambda: get_model("lenet"), "network must be one of digits-cnn, digits-mlp, not 'lenet'"),
])
def test_bad_models_are_refused(build, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_unknown_layer_is_a_type_error():
    with pytest.raises(TypeError, match="layer 0 must be a Conv2d, ReLU, Flatten or Dense"):
        Model("m", (64,), ("pool", Dense(64, 10)))


def test_the_layer_table_of_the_performance_model():
    from chrysalis.gen.spec.networks import get_network
    network = get_network("digits-cnn")
    assert [(l.kind, l.m, l.n, l.columns) for l in network.layers] == [
        ("conv", 8, 10, 64), ("conv", 16, 73, 16), ("fc", 10, 257, 1)]
    assert network.macs(8) == digits_cnn().macs(8)
    assert network.layers[1].input_words == 8 * 8 * 8


def test_a_layers_gathers_are_checked():
    from chrysalis.gen.spec.networks import Layer
    with pytest.raises(ValueError, match=r"layer c: gathers must be \(taps, n, batch, mask\) "
                                         r"of positive integers and a bool, not \(0, 9, 64, "
                                         r"False\)"):
        Layer("c", 8, 10, 64, "conv", 64, ((0, 9, 64, False),))
    # A network without geometry (vgg16's layers) lists none, and the model costs none.
    from chrysalis.gen.spec.networks import get_network
    assert all(layer.gathers == () for layer in get_network("vgg16").layers)
