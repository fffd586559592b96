"""Networks as layer tables for the performance model: MLPs, VGG-16 and ResNet-18.

Every layer the model costs is a matrix product (:class:`Layer`): a fully connected layer
is one directly; a convolution is one through im2col. For a convolution with ``Cin`` input
channels, ``Cout`` filters of ``k x k``, and an ``Hout x Wout`` output, one training step
of a minibatch of ``B`` samples is three products of the same weight matrix ``W`` (``m =
Cout`` rows, ``n = Cin * k * k`` columns, plus one for a bias):

* forward ``Y = W X``, ``X`` the im2col matrix of ``n x (B * Hout * Wout)``;
* input gradient ``dX = W^T dY`` (then col2im, the sum of the overlapping patches, which
  the model costs where the layer lists its ``GATHER`` s, :attr:`Layer.gathers`);
* weight gradient ``dW = dY X^T`` and the update (which is not a MAC: the useful MACs
  of :meth:`Layer.macs` are forward, dX and dW, as CATERPILLAR counts them).

So a layer is ``m``, ``n`` and ``columns`` (the product's columns per sample: 1 for a fully
connected layer, ``Hout * Wout`` for a convolution). Pooling, batch normalisation, residual
additions and ReLU are element-wise: they cost no multiply-accumulates and are left out
(ReLU and its mask are fused into the core's FORWARD and BACKWARD).

Built in (:data:`NETWORKS`, :func:`get_network`): MLPs (the digits MLP 64-32-10 that the
RTL trains, and the MNIST-shaped MLPs of CATERPILLAR's evaluation), the digits CNN of
``gen.spec.model``, VGG-16 and ResNet-18
with ImageNet (224 x 224, 1000 classes) and CIFAR-10 (32 x 32, 10 classes) shapes.

This module is pure Python.
"""

from dataclasses import dataclass

from .checks import is_int

__all__ = ["Layer", "Network", "mlp", "conv", "fc", "vgg16", "resnet18", "NETWORKS",
           "get_network"]


def _check_count(what, value, lo=1):
    """``value`` if it is an integer of at least ``lo`` (1 or 0); ``ValueError`` otherwise."""
    if not is_int(value) or value < lo:
        kind = "a positive" if lo == 1 else "a non-negative"
        raise ValueError(f"{what} must be {kind} integer, not {value!r}")
    return value


@dataclass(frozen=True)
class Layer:
    """One layer as a matrix product (see the module's docstring).

    Parameters
    ----------
    name : str
    m : int
        Output features (filters): rows of ``W``.
    n : int
        Inputs per output: columns of ``W`` (``Cin * k * k``, plus 1 with a bias).
    columns : int
        Columns of the product per sample (``Hout * Wout``; 1 for fully connected).
    kind : str
        ``"fc"`` or ``"conv"``.
    input_words : int
        Words of the layer's input activation per sample before im2col (for the memory
        traffic of the layer's input; ``n * columns`` would count every patch).
    gathers : tuple of (int, int, int, bool)
        The ``GATHER`` s the layer's step makes per sample, as ``(taps, n, batch, mask)``
        of each command (a convolution's im2col and col2im, a dense layer's flatten and
        unflatten; ``gen.spec.model.Model.network``); empty where the network gives no
        geometry, and then the model costs none.
    """

    name: str
    m: int
    n: int
    columns: int = 1
    kind: str = "fc"
    input_words: int = 0
    gathers: tuple = ()

    def __post_init__(self):
        for field in ("m", "n", "columns"):
            _check_count(f"layer {self.name}: {field}", getattr(self, field))
        if self.kind not in ("fc", "conv"):
            raise ValueError(f"layer {self.name}: kind must be 'fc' or 'conv', not "
                             f"{self.kind!r}")
        # 0 stands for "n * columns" (a layer whose input is not an image).
        _check_count(f"layer {self.name}: input_words", self.input_words, 0)
        if self.input_words == 0:
            object.__setattr__(self, "input_words", self.n * self.columns)
        gathers = tuple(tuple(g) for g in self.gathers)
        for g in gathers:
            if len(g) != 4 or not all(is_int(v) and v >= 1 for v in g[:3]) \
                    or not isinstance(g[3], bool):
                raise ValueError(f"layer {self.name}: gathers must be (taps, n, batch, mask) "
                                 f"of positive integers and a bool, not {g!r}")
        object.__setattr__(self, "gathers", gathers)

    @property
    def weights(self):
        """Words of ``W`` (the bias column included)."""
        return self.m * self.n

    def macs(self, batch, first=False):
        """Useful multiply-accumulates of one training step of ``batch`` samples, counted as
        CATERPILLAR counts them: forward, input gradient (none for the first layer: nothing
        below needs it) and weight gradient. The weight update is not a MAC (it is an
        elementwise step; :meth:`step_ops` counts it as the array runs it today)."""
        product = self.m * self.n * self.columns * batch
        return product * (2 if first else 3)

    def step_ops(self, batch, first=False):
        """Operations the PE array performs in one training step with a separate update
        pass: :meth:`macs` plus one per weight. The cost that balances pipeline stages
        (the update pass takes array cycles), not a utilization numerator."""
        return self.macs(batch, first=first) + self.weights


@dataclass(frozen=True)
class Network:
    """A network: its layers in order, and the classes of its softmax output.

    Parameters
    ----------
    name : str
    layers : tuple of Layer
    classes : int
    dataset : str
        What its shapes are for (``"imagenet"``, ``"cifar10"``, ``"mnist"``, ...).
    """

    name: str
    layers: tuple
    classes: int
    dataset: str = ""

    def __post_init__(self):
        if not self.layers:
            raise ValueError(f"network {self.name} has no layers")
        object.__setattr__(self, "layers", tuple(self.layers))
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"network {self.name}: layer {index} must be a Layer, "
                                 f"not {layer!r}")
        _check_count(f"network {self.name}: classes", self.classes)

    @property
    def weights(self):
        return sum(layer.weights for layer in self.layers)

    def macs(self, batch):
        """Useful multiply-accumulates of one training step (:meth:`Layer.macs` summed:
        forward, input and weight gradients; the update is not a MAC)."""
        return sum(layer.macs(batch, first=i == 0) for i, layer in enumerate(self.layers))

    def table(self):
        """The layer table as Markdown."""
        lines = [f"{self.name} ({self.dataset}, {self.classes} classes, "
                 f"{self.weights:,} weights)", "",
                 "| layer | kind | m | n | columns per sample |", "|---|---|---:|---:|---:|"]
        lines += [f"| {l.name} | {l.kind} | {l.m} | {l.n} | {l.columns} |"
                  for l in self.layers]
        return "\n".join(lines) + "\n"


def fc(name, inputs, outputs, bias=True):
    """A fully connected layer of ``inputs -> outputs``."""
    # Checked here: with a bias, `n` would be 1 even for no inputs.
    _check_count(f"layer {name}: inputs", inputs)
    return Layer(name, outputs, inputs + (1 if bias else 0), 1, "fc", inputs)


def conv(name, cin, cout, k, size, stride=1, pad=None, bias=True):
    """A ``k x k`` convolution on a ``size x size`` input; returns ``(layer, out_size)``."""
    for what, value in (("cin", cin), ("k", k), ("size", size), ("stride", stride)):
        _check_count(f"layer {name}: {what}", value)
    pad = k // 2 if pad is None else _check_count(f"layer {name}: pad", pad, 0)
    out = (size + 2 * pad - k) // stride + 1
    if out < 1:
        raise ValueError(f"layer {name}: a {k}x{k} convolution of stride {stride} does not "
                         f"fit a {size}x{size} input")
    layer = Layer(name, cout, cin * k * k + (1 if bias else 0), out * out, "conv",
                  cin * size * size)
    return layer, out


def mlp(sizes, name=None, dataset=""):
    """An MLP ``sizes[0] -> ... -> sizes[-1]`` (biases folded in, as ``sim.compile.compiler``)."""
    if (not isinstance(sizes, (list, tuple)) or len(sizes) < 2
            or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes)):
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    layers = [fc(f"fc{i + 1}", sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]
    return Network(name or "mlp-" + "-".join(map(str, sizes)), tuple(layers), sizes[-1],
                   dataset)


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
          "M")


def vgg16(dataset="imagenet"):
    """VGG-16 (Simonyan & Zisserman, 2015): 13 3x3 convolutions and 3 fully connected
    layers for ImageNet (224 x 224, 4096-4096-1000); for CIFAR-10 (32 x 32) the same
    convolutions and one 512 -> 10 classifier, as the common CIFAR-10 adaptation."""
    size, classes = _dataset(dataset)
    layers, cin, index = [], 3, 0
    for item in _VGG16:
        if item == "M":
            size //= 2
            continue
        index += 1
        layer, size = conv(f"conv{index}", cin, item, 3, size)
        layers.append(layer)
        cin = item
    if dataset == "imagenet":
        layers += [fc("fc14", cin * size * size, 4096), fc("fc15", 4096, 4096),
                   fc("fc16", 4096, classes)]
    else:
        layers.append(fc("fc14", cin * size * size, classes))
    return Network(f"vgg16-{dataset}", tuple(layers), classes, dataset)


def resnet18(dataset="imagenet"):
    """ResNet-18 (He et al., 2016): a stem, four stages of two basic blocks (64, 128, 256,
    512 channels; stride 2 and a 1x1 projection at the start of stages 2-4), global average
    pooling and a fully connected classifier. ImageNet: a 7x7/2 stem and a 3x3/2 max pool
    on 224 x 224; CIFAR-10: a 3x3/1 stem and no pool on 32 x 32. Convolutions have no
    bias (batch normalisation follows them; it is element-wise and not costed)."""
    size, classes = _dataset(dataset)
    layers = []
    if dataset == "imagenet":
        layer, size = conv("conv1", 3, 64, 7, size, stride=2, pad=3, bias=False)
        layers.append(layer)
        size = (size + 2 - 3) // 2 + 1           # 3x3 max pool, stride 2, pad 1
    else:
        layer, size = conv("conv1", 3, 64, 3, size, bias=False)
        layers.append(layer)
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512), start=2):
        for block in range(2):
            stride = 2 if block == 0 and stage > 2 else 1
            tag = f"conv{stage}_{block + 1}"
            a, out = conv(f"{tag}a", cin, cout, 3, size, stride=stride, bias=False)
            b, _ = conv(f"{tag}b", cout, cout, 3, out, bias=False)
            layers += [a, b]
            if stride != 1 or cin != cout:
                proj, _ = conv(f"{tag}proj", cin, cout, 1, size, stride=stride, pad=0,
                               bias=False)
                layers.append(proj)
            cin, size = cout, out
    layers.append(fc("fc", cin, classes))
    return Network(f"resnet18-{dataset}", tuple(layers), classes, dataset)


def _digits_cnn():
    """The digits CNN of ``gen.spec.model`` (the network ``chrysalis train --network
    digits-cnn`` trains) as a layer table."""
    from .model import digits_cnn
    return digits_cnn().network()


def _dataset(dataset):
    shapes = {"imagenet": (224, 1000), "cifar10": (32, 10)}
    if dataset not in shapes:
        raise ValueError(f"dataset must be one of {', '.join(shapes)}, not {dataset!r}")
    return shapes[dataset]


#: Built-in networks by name: a function that builds each.
NETWORKS = {
    "digits-mlp": lambda: mlp([64, 32, 10], "digits-mlp", "digits"),
    "digits-cnn": lambda: _digits_cnn(),
    "mnist-500x3": lambda: mlp([784, 500, 500, 500, 10], "mnist-500x3", "mnist"),
    "mnist-1000x3": lambda: mlp([784, 1000, 1000, 1000, 10], "mnist-1000x3", "mnist"),
    "mnist-2000x3": lambda: mlp([784, 2000, 2000, 2000, 10], "mnist-2000x3", "mnist"),
    "mnist-2500x4": lambda: mlp([784, 2500, 2000, 1500, 1000, 500, 10], "mnist-2500x4",
                                "mnist"),
    "vgg16": lambda: vgg16("imagenet"),
    "vgg16-cifar10": lambda: vgg16("cifar10"),
    "resnet18": lambda: resnet18("imagenet"),
    "resnet18-cifar10": lambda: resnet18("cifar10"),
}


def get_network(name):
    """A built-in network by name (:data:`NETWORKS`), or an MLP written as its sizes
    (``"784-500-10"``)."""
    if not isinstance(name, str):
        raise ValueError(f"network must be a name such as 'vgg16', not {name!r}")
    if name in NETWORKS:
        return NETWORKS[name]()
    parts = name.split("-")
    if all(p.isascii() and p.isdigit() for p in parts):
        # Meant as MLP sizes: say what is wrong with them rather than list the names.
        if len(parts) < 2 or any(int(p) == 0 for p in parts):
            raise ValueError(f"network as MLP sizes must be at least two positive layer "
                             f"sizes such as '784-500-10', not {name!r}")
        return mlp([int(p) for p in parts])
    raise ValueError(f"network must be one of {', '.join(NETWORKS)} or MLP sizes such as "
                     f"'784-500-10', not {name!r}")
