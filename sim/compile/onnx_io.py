"""Networks in and out as ONNX: a ``gen.spec.model.Model`` and its weights from an ONNX
file (:func:`read_onnx`), and back (:func:`write_onnx`, :func:`to_onnx`).

Supported graphs are chains: one input (``[N, features]`` or ``[N, channels, height,
width]``, float32), one output (the logits, no softmax), every node taking the previous
node's output, the weights as initializers. The operators, with what they become:

* ``Conv`` (square kernel, equal strides and pads on every side, no dilation, one group,
  an optional bias) -> :class:`~chrysalis.gen.spec.model.Conv2d`;
* ``Relu`` -> :class:`~chrysalis.gen.spec.model.ReLU`;
* ``Flatten`` (``axis = 1``) and ``Reshape`` to ``[N, features]`` ->
  :class:`~chrysalis.gen.spec.model.Flatten` (ONNX flattens ``(c, y, x)``, as the model
  does);
* ``Gemm`` (``alpha = beta = 1``, ``transA = 0``, either ``transB``) and ``MatMul``
  followed by an optional ``Add`` of a bias -> :class:`~chrysalis.gen.spec.model.Dense`.

Anything else is refused with one line naming the operator and the node
(:class:`OnnxError`, a ``ValueError``). The weights become the model's matrices, fp32 bit
patterns with the bias in the last column (a missing bias is zero); float32 values keep
every bit. :func:`to_onnx` writes ``Conv``, ``Relu``, ``Flatten`` and ``Gemm``
(``transB = 1``) at opset 13, so a model read and written again keeps every weight bit
(:func:`read_onnx` of :func:`to_onnx` gives the same matrices).

This module imports the ``onnx`` package when it runs.
"""

import numpy as np

from chrysalis.gen.spec.model import Conv2d, Dense, Flatten, Model, ReLU
from chrysalis.sim.golden import numerics as nx

__all__ = ["OPS", "OPSET", "OnnxError", "from_onnx", "read_onnx", "to_onnx", "write_onnx"]

#: The operators a graph may have.
OPS = ("Conv", "Relu", "Flatten", "Reshape", "Gemm", "MatMul", "Add")
#: The opset of the files :func:`to_onnx` writes.
OPSET = 13


class OnnxError(ValueError):
    """An ONNX graph that Chrysalis cannot train, said in one line."""


def _onnx():
    import onnx
    return onnx


def read_onnx(path):
    """``(model, weights)`` of an ONNX file (:func:`from_onnx`)."""
    onnx = _onnx()
    try:
        proto = onnx.load(str(path))
    except FileNotFoundError:
        raise OnnxError(f"{path}: no such file") from None
    except Exception as error:  # the protobuf parser's many errors: not an ONNX file
        raise OnnxError(f"{path}: not an ONNX model ({type(error).__name__})") from None
    return from_onnx(proto, name=_stem(path))


def _stem(path):
    from pathlib import Path
    return Path(str(path)).stem


def _attributes(node):
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _where(node):
    return f"node {node.name or '(unnamed)'!r} ({node.op_type})"


class _Graph:
    """The initializers and the chain being read."""

    def __init__(self, graph):
        onnx = _onnx()
        self.constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                attrs = _attributes(node)
                if "value" in attrs:
                    self.constants[node.output[0]] = onnx.numpy_helper.to_array(
                        attrs["value"])

    def constant(self, node, index, what):
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise OnnxError(f"{_where(node)}: its {what} must be an initializer, not the "
                            f"computed value {name!r}")
        return self.constants[name]


def _input_shape(graph):
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1:
        raise OnnxError(f"the graph must have one input, not {len(inputs)!r}")
    value = inputs[0]
    dims = value.type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    if len(shape) not in (2, 4) or any(s is None or s < 1 for s in shape[1:]):
        raise OnnxError(f"the input {value.name!r} must be [N, features] or [N, channels, "
                        f"height, width] with fixed sizes after N, not {list(shape)!r}")
    if value.type.tensor_type.elem_type != _onnx().TensorProto.FLOAT:
        raise OnnxError(f"the input {value.name!r} must be float32")
    return value.name, tuple(int(s) for s in shape[1:])


def from_onnx(proto, name="onnx"):
    """``(model, weights)`` of an ``onnx.ModelProto`` (see the module's docstring)."""
    graph = proto.graph
    g = _Graph(graph)
    current, input_shape = _input_shape(graph)
    shape = input_shape
    layers, weights = [], []
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    k = 0
    while k < len(nodes):
        node = nodes[k]
        if node.op_type not in OPS:
            raise OnnxError(f"{_where(node)}: operator {node.op_type} is not supported; "
                            f"supported: {', '.join(OPS)}")
        if not node.input or node.input[0] != current:
            raise OnnxError(f"{_where(node)}: the graph must be a chain, each node taking "
                            f"the previous node's output {current!r}, not "
                            f"{list(node.input)!r}")
        consumed = 1
        if node.op_type == "Conv":
            layer, w = _conv(g, node, shape)
        elif node.op_type == "Relu":
            layer, w = ReLU(), None
        elif node.op_type in ("Flatten", "Reshape"):
            layer, w = _flatten(g, node, shape), None
        elif node.op_type == "Gemm":
            layer, w = _gemm(g, node, shape)
        elif node.op_type == "MatMul":
            following = nodes[k + 1] if k + 1 < len(nodes) else None
            layer, w, consumed = _matmul(g, node, following, shape)
        else:
            raise OnnxError(f"{_where(node)}: an Add must follow a MatMul (its bias)")
        try:
            shape = layer.output_shape(shape)
        except ValueError as error:
            raise OnnxError(f"{_where(node)}: {error}") from None
        layers.append(layer)
        if w is not None:
            weights.append(nx.from_float32(np.asarray(w, dtype=np.float32)))
        current = nodes[k + consumed - 1].output[0]
        k += consumed
    outputs = [o.name for o in graph.output]
    if outputs != [current]:
        raise OnnxError(f"the graph's output must be the last node's {current!r}, not "
                        f"{outputs!r}")
    try:
        model = Model(name, input_shape, tuple(layers))
    except ValueError as error:
        raise OnnxError(str(error)) from None
    return model, weights


def _conv(g, node, shape):
    attrs = _attributes(node)
    kernel = g.constant(node, 1, "weight")
    bias = g.constant(node, 2, "bias")
    if kernel is None or kernel.ndim != 4 or kernel.shape[2] != kernel.shape[3]:
        raise OnnxError(f"{_where(node)}: the weight must be a square kernel [c_out, c_in, "
                        f"k, k], not {None if kernel is None else list(kernel.shape)!r}")
    c_out, c_in, k, _ = kernel.shape
    strides = list(attrs.get("strides", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    for what, value, ok in (
            ("strides", strides, len(set(strides)) == 1),
            ("pads", pads, len(set(pads)) == 1),
            ("dilations", list(attrs.get("dilations", [1, 1])),
             set(attrs.get("dilations", [1, 1])) == {1}),
            ("group", attrs.get("group", 1), attrs.get("group", 1) == 1),
            ("auto_pad", attrs.get("auto_pad", b"NOTSET"),
             attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))):
        if not ok:
            raise OnnxError(f"{_where(node)}: {what} must be equal on both axes (strides, "
                            f"pads), 1 (dilations, group) or NOTSET (auto_pad), not "
                            f"{value!r}")
    try:
        layer = Conv2d(int(c_in), int(c_out), int(k), stride=int(strides[0]),
                       pad=int(pads[0]))
    except ValueError as error:
        raise OnnxError(f"{_where(node)}: {error}") from None
    if bias is None:
        bias = np.zeros(c_out, dtype=np.float32)
    w = np.concatenate([kernel.reshape(c_out, -1), bias.reshape(c_out, 1)], axis=1)
    return layer, w


def _flatten(g, node, shape):
    if node.op_type == "Flatten":
        axis = _attributes(node).get("axis", 1)
        if axis != 1:
            raise OnnxError(f"{_where(node)}: axis must be 1 (flatten each sample), not "
                            f"{axis!r}")
        return Flatten()
    target = g.constant(node, 1, "shape")
    features = int(np.prod(shape))
    ok = target is not None and target.ndim == 1 and len(target) == 2
    if ok:
        first, second = int(target[0]), int(target[1])
        ok = (second == features and first >= -1) or (second == -1 and first >= 0)
    if not ok:
        raise OnnxError(f"{_where(node)}: a Reshape must flatten each sample to [N, "
                        f"{features}], not to {None if target is None else target.tolist()!r}")
    return Flatten()


def _gemm(g, node, shape):
    attrs = _attributes(node)
    for what, want in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)):
        if attrs.get(what, want) != want:
            raise OnnxError(f"{_where(node)}: {what} must be {want}, not "
                            f"{attrs[what]!r}")
    b = g.constant(node, 1, "weight")
    if b is None or b.ndim != 2:
        raise OnnxError(f"{_where(node)}: the weight must be a matrix")
    kernel = b if attrs.get("transB", 0) else b.T
    bias = g.constant(node, 2, "bias")
    return _dense(node, kernel, bias)


def _matmul(g, node, following, shape):
    b = g.constant(node, 1, "weight")
    if b is None or b.ndim != 2:
        raise OnnxError(f"{_where(node)}: the weight must be a matrix")
    bias, consumed = None, 1
    if following is not None and following.op_type == "Add" and \
            node.output[0] in following.input:
        other = [i for i in following.input if i != node.output[0]]
        if len(other) != 1 or other[0] not in g.constants:
            raise OnnxError(f"{_where(following)}: the bias must be an initializer")
        bias, consumed = g.constants[other[0]], 2
    layer, w = _dense(node, b.T, bias)
    return layer, w, consumed


def _dense(node, kernel, bias):
    n_out, n_in = kernel.shape
    if bias is None:
        bias = np.zeros(n_out, dtype=np.float32)
    bias = np.asarray(bias).reshape(-1)
    if bias.shape != (n_out,):
        raise OnnxError(f"{_where(node)}: the bias must have {n_out} values, not "
                        f"{bias.size!r}")
    return Dense(int(n_in), int(n_out)), np.concatenate([kernel, bias[:, None]], axis=1)


def to_onnx(model, weights, producer="chrysalis"):
    """An ``onnx.ModelProto`` of ``model`` with ``weights`` (fp32 bit patterns, bias last):
    input ``input`` ``[N, *input_shape]``, output ``logits`` ``[N, classes]``."""
    onnx = _onnx()
    helper, TensorProto = onnx.helper, onnx.TensorProto
    trainable = {t.index: k for k, t in enumerate(model.trainable)}
    if len(weights) != len(trainable):
        raise ValueError(f"weights must be {len(trainable)} matrices, not {len(weights)!r}")
    nodes, initializers = [], []
    current = "input"
    for i, layer in enumerate(model.layers):
        out = f"x{i + 1}" if i + 1 < len(model.layers) else "logits"
        if isinstance(layer, (Conv2d, Dense)):
            w = nx.to_float32(weights[trainable[i]])
            if w.shape != model.weight_shapes[trainable[i]]:
                raise ValueError(f"weights[{trainable[i]}] must have shape "
                                 f"{model.weight_shapes[trainable[i]]!r}, not {w.shape!r}")
            kernel, bias = w[:, :-1], w[:, -1].copy()
            wname, bname = f"w{trainable[i]}", f"b{trainable[i]}"
            if isinstance(layer, Conv2d):
                kernel = kernel.reshape(layer.c_out, layer.c_in, layer.k, layer.k)
                nodes.append(helper.make_node(
                    "Conv", [current, wname, bname], [out], name=f"conv{i}",
                    kernel_shape=[layer.k, layer.k], strides=[layer.stride] * 2,
                    pads=[layer.pad] * 4))
            else:
                nodes.append(helper.make_node("Gemm", [current, wname, bname], [out],
                                              name=f"dense{i}", transB=1))
            initializers += [onnx.numpy_helper.from_array(np.ascontiguousarray(kernel),
                                                          wname),
                             onnx.numpy_helper.from_array(bias, bname)]
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [current], [out], name=f"relu{i}"))
        else:
            nodes.append(helper.make_node("Flatten", [current], [out], name=f"flatten{i}",
                                          axis=1))
        current = out
    graph = helper.make_graph(
        nodes, model.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["N", *model.input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", model.classes])],
        initializers)
    proto = helper.make_model(graph, producer_name=producer,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    # An IR version every ONNX runtime of the last years reads.
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def write_onnx(path, model, weights):
    """Write :func:`to_onnx` of ``model`` and ``weights`` to ``path``."""
    onnx = _onnx()
    onnx.save(to_onnx(model, weights), str(path))
