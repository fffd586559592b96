"""Trainable networks: a sequence of layers with shapes, from which the golden CNN step
(``sim.golden.cnn``), the training driver and the ONNX import and export work.

A :class:`Model` is an input shape and a tuple of layers:

* :class:`Conv2d` ``(c_in, c_out, k, stride, pad)``: a ``k x k`` convolution with zero
  padding and a bias, on an image ``(channels, height, width)``; its output is
  ``(c_out, (h + 2 pad - k) // stride + 1, ...)``;
* :class:`ReLU`: after a :class:`Conv2d` or a :class:`Dense` (the core fuses it into that
  layer's FORWARD and the derivative into the BACKWARD or GATHER below);
* :class:`Flatten`: an image ``(c, h, w)`` to ``c * h * w`` features in ``(c, y, x)`` order
  (ONNX's and PyTorch's order); on features it changes nothing;
* :class:`Dense` ``(n_in, n_out)``: a fully connected layer with a bias, on features.

The last layer is a :class:`Dense` without ReLU: its outputs are the logits of a softmax
cross-entropy loss. Every trainable layer keeps its weights as the MLP does: one matrix of
``c_out x (c_in * k * k + 1)`` (``n_out x (n_in + 1)``), the bias in the last column, the
columns of a convolution in ``(c, kh, kw)`` order (:attr:`Model.weight_shapes`).

Built in (:data:`MODELS`, :func:`get_model`): ``digits-cnn`` (conv3x3 1->8, ReLU, conv3x3
stride 2 8->16, ReLU, flatten, dense 256->10, on the 8x8 digits) and ``digits-mlp`` (the
64-32-10 MLP); :func:`mlp_model` makes any MLP.

This module is pure Python.
"""

from dataclasses import dataclass

from .checks import is_int

__all__ = ["Conv2d", "ReLU", "Flatten", "Dense", "Trainable", "Model", "mlp_model",
           "digits_cnn", "MODELS", "get_model"]


def _count(layer, field, value, lo=1):
    if not is_int(value) or value < lo:
        kind = "a positive" if lo == 1 else "a non-negative"
        raise ValueError(f"{layer}: {field} must be {kind} integer, not {value!r}")


@dataclass(frozen=True)
class Conv2d:
    """A ``k x k`` convolution with a bias, stride and zero padding.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    k : int
        Kernel size (square).
    stride : int
    pad : int
        Zeros added on every side.
    """

    c_in: int
    c_out: int
    k: int
    stride: int = 1
    pad: int = 0

    def __post_init__(self):
        for field in ("c_in", "c_out", "k", "stride"):
            _count("Conv2d", field, getattr(self, field))
        _count("Conv2d", "pad", self.pad, 0)
        if self.pad >= self.k:
            # A tap would then see only padding on a whole edge row: nothing trains it.
            raise ValueError(f"Conv2d: pad must be less than the kernel size {self.k}, "
                             f"not {self.pad!r}")

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"Conv2d needs an image (channels, height, width), not "
                             f"features of shape {shape!r} (put it before any Flatten)")
        c, h, w = shape
        if c != self.c_in:
            raise ValueError(f"Conv2d: c_in must be the {c} channels of its input, not "
                             f"{self.c_in!r}")
        oh = (h + 2 * self.pad - self.k) // self.stride + 1
        ow = (w + 2 * self.pad - self.k) // self.stride + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"Conv2d: a {self.k}x{self.k} kernel with pad {self.pad} does "
                             f"not fit a {h}x{w} input, not an output of {oh}x{ow}")
        return (self.c_out, oh, ow)

    @property
    def fan_in(self):
        """Inputs per output, the bias excluded: ``c_in * k * k``."""
        return self.c_in * self.k * self.k

    @property
    def outputs(self):
        return self.c_out


@dataclass(frozen=True)
class ReLU:
    """``max(x, 0)``, after a :class:`Conv2d` or :class:`Dense`."""

    def output_shape(self, shape):
        return shape


@dataclass(frozen=True)
class Flatten:
    """An image ``(c, h, w)`` to ``c * h * w`` features, in ``(c, y, x)`` order."""

    def output_shape(self, shape):
        if len(shape) == 3:
            c, h, w = shape
            return (c * h * w,)
        return shape


@dataclass(frozen=True)
class Dense:
    """A fully connected layer with a bias.

    Parameters
    ----------
    n_in, n_out : int
    """

    n_in: int
    n_out: int

    def __post_init__(self):
        for field in ("n_in", "n_out"):
            _count("Dense", field, getattr(self, field))

    def output_shape(self, shape):
        if len(shape) != 1:
            raise ValueError(f"Dense needs features, not an image of shape {shape!r} "
                             f"(put a Flatten before it)")
        if shape[0] != self.n_in:
            raise ValueError(f"Dense: n_in must be the {shape[0]} features of its input, "
                             f"not {self.n_in!r}")
        return (self.n_out,)

    @property
    def fan_in(self):
        return self.n_in

    @property
    def outputs(self):
        return self.n_out


_LAYERS = (Conv2d, ReLU, Flatten, Dense)


@dataclass(frozen=True)
class Trainable:
    """A layer with weights, as the training step sees it.

    Members
    -------
    index : int
        Its position in :attr:`Model.layers`.
    layer : Conv2d or Dense
    in_shape, out_shape : tuple of int
        The shapes around it (an image ``(c, h, w)`` or features ``(n,)``).
    relu : bool
        A :class:`ReLU` follows it.
    """

    index: int
    layer: object
    in_shape: tuple
    out_shape: tuple
    relu: bool

    @property
    def weight_shape(self):
        """``(outputs, fan_in + 1)``: the bias in the last column."""
        return (self.layer.outputs, self.layer.fan_in + 1)

    @property
    def is_conv(self):
        return isinstance(self.layer, Conv2d)


@dataclass(frozen=True)
class Model:
    """A trainable network (see the module's docstring).

    Parameters
    ----------
    name : str
    input_shape : tuple of int
        ``(channels, height, width)`` for an image, ``(features,)`` otherwise.
    layers : tuple
        :class:`Conv2d`, :class:`ReLU`, :class:`Flatten` and :class:`Dense` in order.

    Members
    -------
    shapes : tuple of tuple
        The input's shape, then the shape after every layer.
    """

    name: str
    input_shape: tuple
    layers: tuple

    def __post_init__(self):
        shape = tuple(self.input_shape)
        if len(shape) not in (1, 3) or any(not is_int(s) or s < 1 for s in shape):
            raise ValueError(f"model {self.name}: input_shape must be (channels, height, "
                             f"width) or (features,) of positive integers, not "
                             f"{self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ValueError(f"model {self.name}: layers must not be empty, not {layers!r}")
        shapes = [shape]
        for i, layer in enumerate(layers):
            if not isinstance(layer, _LAYERS):
                raise TypeError(f"model {self.name}: layer {i} must be a Conv2d, ReLU, "
                                f"Flatten or Dense, not {layer!r}")
            if isinstance(layer, ReLU) and (i == 0 or not isinstance(layers[i - 1],
                                                                     (Conv2d, Dense))):
                raise ValueError(f"model {self.name}: layer {i}: a ReLU must follow a "
                                 f"Conv2d or a Dense (it is fused into that layer), not "
                                 f"{layers[i - 1] if i else None!r}")
            try:
                shapes.append(tuple(layer.output_shape(shapes[-1])))
            except ValueError as error:
                raise ValueError(f"model {self.name}: layer {i}: {error}") from None
        if not isinstance(layers[-1], Dense):
            raise ValueError(f"model {self.name}: the last layer must be a Dense (the logits "
                             f"of the softmax cross-entropy), not {layers[-1]!r}")
        object.__setattr__(self, "shapes", tuple(shapes))

    @property
    def output_shape(self):
        return self.shapes[-1]

    @property
    def classes(self):
        """Outputs of the last layer."""
        return self.shapes[-1][0]

    @property
    def input_features(self):
        """Numbers per sample of the input."""
        size = 1
        for s in self.input_shape:
            size *= s
        return size

    @property
    def trainable(self):
        """The layers with weights, in order, as :class:`Trainable`."""
        out = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, (Conv2d, Dense)):
                relu = i + 1 < len(self.layers) and isinstance(self.layers[i + 1], ReLU)
                out.append(Trainable(i, layer, self.shapes[i], self.shapes[i + 1], relu))
        return tuple(out)

    @property
    def weight_shapes(self):
        """The weight matrix of every trainable layer, bias last."""
        return tuple(t.weight_shape for t in self.trainable)

    @property
    def is_mlp(self):
        """Features in, Dense layers only, a ReLU after every one but the last: the network
        the MLP compiler (``sim.compile.compiler``) runs."""
        trainable = self.trainable
        return (len(self.input_shape) == 1
                and all(not t.is_conv for t in trainable)
                and all(t.relu for t in trainable[:-1])
                and not any(isinstance(layer, Flatten) for layer in self.layers))

    @property
    def mlp_sizes(self):
        """The layer sizes of an MLP (:attr:`is_mlp`), inputs first."""
        if not self.is_mlp:
            raise ValueError(f"model {self.name} is not an MLP (Dense layers with a ReLU "
                             f"after all but the last)")
        return (self.input_shape[0],) + tuple(t.layer.n_out for t in self.trainable)

    def macs(self, batch):
        """Useful multiply-accumulates of a training step of ``batch`` samples, counted as
        CATERPILLAR counts them (forward, dX but not for the first layer, dW), the bias
        included as one more product per output."""
        total = 0
        for k, t in enumerate(self.trainable):
            columns = 1
            if t.is_conv:
                columns = t.out_shape[1] * t.out_shape[2]
            product = t.weight_shape[0] * t.weight_shape[1] * columns * batch
            total += product * (2 if k == 0 else 3)
        return total

    def network(self, dataset="digits"):
        """The model as the performance model's layer table
        (:class:`chrysalis.gen.spec.networks.Network`): a matrix product per trainable
        layer, a convolution's with ``oh * ow`` columns per sample."""
        from .networks import Layer, Network
        layers = []
        trainable = self.trainable
        for k, t in enumerate(trainable):
            rows, columns = t.weight_shape
            gathers = self._gathers(k)
            if t.is_conv:
                c, h, w = t.in_shape
                layers.append(Layer(f"conv{k + 1}", rows, columns,
                                    t.out_shape[1] * t.out_shape[2], "conv", c * h * w,
                                    gathers))
            else:
                layers.append(Layer(f"fc{k + 1}", rows, columns, 1, "fc", t.in_shape[0],
                                    gathers))
        return Network(self.name, tuple(layers), self.classes, dataset)

    def _gathers(self, k):
        """The ``GATHER`` s per sample of trainable layer ``k``'s step, ``(taps, n, batch,
        mask)`` each, as the compiler (``sim.compile.cnn_program``) emits them: a
        convolution's im2col and (but the first layer) its col2im, masked by the ReLU
        below; a dense layer's flatten of an image and (but the first layer) its
        unflatten."""
        trainable = self.trainable
        t = trainable[k]
        below = trainable[k - 1] if k else None
        mask = below is not None and below.relu
        if t.is_conv:
            c, h, w = t.in_shape
            conv = t.layer
            out = [(1, conv.fan_in, t.out_shape[1] * t.out_shape[2], False)]
            if below is not None:
                taps = _covering(h, conv.k, conv.stride, conv.pad, t.out_shape[1]) * \
                    _covering(w, conv.k, conv.stride, conv.pad, t.out_shape[2])
                out.append((taps, c, h * w, mask))
            return tuple(out)
        first = below.index + 1 if below is not None else 0
        for i in range(first, t.index):
            shape = self.shapes[i]
            if isinstance(self.layers[i], Flatten) and len(shape) == 3:
                c, h, w = shape
                out = [(1, c * h * w, 1, False)]
                if below is not None:
                    out.append((1, c, h * w, mask))
                return tuple(out)
        return ()

    def describe(self):
        """One line per layer: the layer and its output shape."""
        lines = [f"input {self.input_shape}"]
        for layer, shape in zip(self.layers, self.shapes[1:]):
            lines.append(f"{layer} -> {shape}")
        return lines


def _covering(size, k, stride, pad, out):
    """The most patches of a ``k``-wide kernel (``stride``, ``pad``, ``out`` outputs) that
    cover one input position along a dimension of ``size``."""
    best = 0
    for y in range(size):
        best = max(best, sum(1 for kh in range(k)
                             if (y + pad - kh) % stride == 0
                             and 0 <= (y + pad - kh) // stride < out))
    return max(1, best)


def mlp_model(sizes, name=None):
    """An MLP of ``sizes`` (inputs first): Dense layers, a ReLU after all but the last."""
    if (not isinstance(sizes, (list, tuple)) or len(sizes) < 2
            or any(not is_int(s) or s < 1 for s in sizes)):
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    layers = []
    for l in range(len(sizes) - 1):
        layers.append(Dense(sizes[l], sizes[l + 1]))
        if l < len(sizes) - 2:
            layers.append(ReLU())
    return Model(name or "mlp-" + "-".join(map(str, sizes)), (sizes[0],), tuple(layers))


def digits_cnn():
    """The digits CNN: conv3x3 1->8 (pad 1), ReLU, conv3x3 stride 2 8->16 (pad 1), ReLU,
    flatten (16 x 4 x 4 = 256), dense 256->10, on 1 x 8 x 8 images."""
    return Model("digits-cnn", (1, 8, 8), (
        Conv2d(1, 8, 3, stride=1, pad=1), ReLU(),
        Conv2d(8, 16, 3, stride=2, pad=1), ReLU(),
        Flatten(), Dense(256, 10)))


#: Built-in trainable networks by name.
MODELS = {
    "digits-cnn": digits_cnn,
    "digits-mlp": lambda: mlp_model((64, 32, 10), name="digits-mlp"),
}


def get_model(name):
    """A built-in :class:`Model` by name (:data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"network must be one of {', '.join(MODELS)}, not {name!r}")
    return MODELS[name]()
