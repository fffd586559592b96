"""ONNX in and out: a round trip keeps every weight bit; onnxruntime's inference of an
exported network against the golden forward pass (a measured delta: onnxruntime computes
in float32, the golden core with bf16 multiplicands) and against the float32 reference;
graphs built by hand with Gemm, MatMul + Add, Reshape; unsupported operators refused with
one line naming the operator and the node."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from chrysalis.gen.spec.formats import FP32  # noqa: E402
from chrysalis.gen.spec.model import digits_cnn, mlp_model  # noqa: E402
from chrysalis.sim.compile.onnx_io import (OnnxError, from_onnx, read_onnx,  # noqa: E402
                                           to_onnx, write_onnx)
from chrysalis.sim.golden import core_model as cm  # noqa: E402
from chrysalis.sim.golden import numerics as nx  # noqa: E402
from chrysalis.sim.golden.cnn import CnnGolden  # noqa: E402
from chrysalis.sim.train import cnn_reference as ref  # noqa: E402


def _weights(model, seed):
    rng = np.random.default_rng(seed)
    return [nx.from_float32((rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32))
            for s in model.weight_shapes]


def _run(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("model", [digits_cnn(), mlp_model((64, 32, 10))],
                         ids=["cnn", "mlp"])
def test_round_trip_keeps_every_bit(model, tmp_path):
    weights = _weights(model, 1)
    weights[0][0, 0] = 0x8000_0000                 # -0 survives too
    path = tmp_path / "net.onnx"
    write_onnx(path, model, weights)
    back, back_weights = read_onnx(path)
    assert back.layers == model.layers and back.input_shape == model.input_shape
    assert back.name == "net"
    for a, b in zip(back_weights, weights):
        assert a.dtype == np.uint64 and np.array_equal(a, b)


def test_onnxruntime_against_the_golden_forward_pass():
    model = digits_cnn()
    weights = _weights(model, 2)
    rng = np.random.default_rng(3)
    x = rng.random((64, 16)).astype(np.float32)          # 16 images, a column each
    onnx_logits = _run(to_onnx(model, weights), x.T.reshape(16, 1, 8, 8)).T
    bf16 = nx.to_float32(CnnGolden(model).logits(weights, nx.from_float32(x)))
    fp32 = nx.to_float32(CnnGolden(model, cm.CoreNumerics(operand=FP32)).logits(
        weights, nx.from_float32(x)))
    reference = ref.forward(model, [nx.to_float32(w) for w in weights], x)
    scale = np.abs(onnx_logits).max()
    # Measured deltas, not bit-exactness: onnxruntime sums in float32 in its own order.
    # The golden core with bf16 multiplicands: 3.6e-3 of the largest logit (1.8e-3
    # absolute, measured); with fp32 multiplicands, and the float32 reference: 3.0e-7
    # (the order of the sums only).
    assert np.abs(bf16 - onnx_logits).max() / scale < 1e-2
    assert np.abs(fp32 - onnx_logits).max() / scale < 2e-6
    assert np.abs(reference - onnx_logits).max() / scale < 2e-6
    # ... and the same class for every image
    assert np.array_equal(bf16.argmax(axis=0), onnx_logits.argmax(axis=0))


def _graph(nodes, initializers, shape, output="y", classes=10):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32) if k != "shape"
                                 else np.asarray(v, dtype=np.int64), k)
         for k, v in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_matmul_add_and_gemm_without_transpose_are_dense_layers():
    rng = np.random.default_rng(4)
    w1, b1 = rng.standard_normal((64, 32)), rng.standard_normal(32)
    w2 = rng.standard_normal((32, 10))
    proto = _graph([helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm"),
                    helper.make_node("Add", ["h", "b1"], ["h1"], name="add"),
                    helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
                    helper.make_node("Gemm", ["h2", "w2"], ["y"], name="gemm")],
                   {"w1": w1, "b1": b1, "w2": w2}, [64])
    model, weights = from_onnx(proto)
    assert model.is_mlp and model.mlp_sizes == (64, 32, 10)
    assert np.array_equal(nx.to_float32(weights[0]),
                          np.concatenate([w1.T, b1[:, None]], axis=1).astype(np.float32))
    assert np.all(nx.to_float32(weights[1])[:, -1] == 0)      # no bias: zeros
    x = rng.random((64, 5)).astype(np.float32)
    ours = ref.forward(model, [nx.to_float32(w) for w in weights], x)
    theirs = ort.InferenceSession(proto.SerializeToString(),
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x.T})[0]
    assert np.abs(ours - theirs.T).max() < 1e-4


def test_reshape_flattens_a_conv_output():
    rng = np.random.default_rng(5)
    proto = _graph([helper.make_node("Conv", ["x", "k"], ["c"], name="conv",
                                     kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                    helper.make_node("Reshape", ["c", "shape"], ["f"], name="reshape"),
                    helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)],
                   {"k": rng.standard_normal((4, 1, 3, 3)), "shape": [-1, 64],
                    "w": rng.standard_normal((10, 64)), "b": rng.standard_normal(10)},
                   [1, 8, 8])
    model, weights = from_onnx(proto)
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2d", "Flatten", "Dense"]
    assert model.layers[0].stride == 2 and model.layers[0].pad == 1
    assert np.all(nx.to_float32(weights[0])[:, -1] == 0)


def test_a_reshape_shape_from_a_constant_node_and_initializers_among_the_inputs():
    # As older exporters write them: the Reshape's shape from a Constant node, and every
    # initializer listed among the graph's inputs too.
    rng = np.random.default_rng(6)
    shape = helper.make_node("Constant", [], ["s"], name="const",
                             value=numpy_helper.from_array(np.array([0, 64], np.int64)))
    proto = _graph([shape,
                    helper.make_node("Reshape", ["x", "s"], ["f"], name="reshape"),
                    helper.make_node("Gemm", ["f", "w"], ["y"], name="fc", transB=1)],
                   {"w": rng.standard_normal((10, 64))}, [1, 8, 8])
    proto.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [10, 64]))
    model, weights = from_onnx(proto)
    assert model.input_shape == (1, 8, 8) and model.layers[0].__class__.__name__ == "Flatten"
    assert weights[0].shape == (10, 65)


@pytest.mark.parametrize("node, message", [
    (helper.make_node("MaxPool", ["x"], ["y"], name="pool1", kernel_shape=[2, 2]),
     "node 'pool1' (MaxPool): operator MaxPool is not supported; supported: Conv, Relu"),
    (helper.make_node("Softmax", ["x"], ["y"], name="sm"),
     "node 'sm' (Softmax): operator Softmax is not supported"),
    (helper.make_node("Conv", ["x", "k"], ["y"], name="dil", kernel_shape=[3, 3],
                      dilations=[2, 2]), "node 'dil' (Conv): dilations must be"),
    (helper.make_node("Conv", ["x", "k"], ["y"], name="asym", kernel_shape=[3, 3],
                      pads=[1, 0, 1, 0]), "node 'asym' (Conv): pads must be"),
    (helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=2),
     "node 'fl' (Flatten): axis must be 1"),
])
def test_unsupported_graphs_are_refused_in_one_line(node, message):
    proto = _graph([node], {"k": np.zeros((2, 1, 3, 3))}, [1, 8, 8])
    with pytest.raises(OnnxError, match=message.replace("(", r"\(").replace(")", r"\)")) \
            as info:
        from_onnx(proto)
    assert "\n" not in str(info.value)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(OnnxError, match="no such file"):
        read_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xfe not protobuf")
    with pytest.raises(OnnxError, match="junk.onnx: not an ONNX model"):
        read_onnx(junk)
