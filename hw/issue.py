"""The training core's command, the control its engines share, and what they issue.

The core (``hw.core``) is a sequencer (``hw.sequencer``) that takes the commands and
engines that run them (``hw.mover``, ``hw.compute``, the loss-gradient unit). Each cycle,
each engine asks the datapath for what it needs -- a micro-op for the PEs, a bus selection,
a reducer step, a scratchpad read -- as an :func:`issue_layout` value; the core merges the
requests. Only the engines of the running commands ask for anything (a command starts only
after the one before has drained, except a load the mover runs beside a ``WGRAD``, whose
compute engine asks for the compute slot alone, and a ``WGRAD`` whose compute engine runs
beside the drain engine's last group of a ``FORWARD`` or ``BACKWARD``), and engines that
run at the same time ask for different fields, so the merge is a bitwise OR.
"""

from amaranth.hdl import Cat, Const
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from chrysalis.gen.spec import isa

__all__ = ["SIZE_BITS", "CORE_OPS", "OP_BITS", "command_layout", "EngineControl",
           "reducer_layout", "broadcast_layout", "read_layout", "issue_layout",
           "request_layout", "requested", "lane_mask", "popcount"]

#: Width of a size field of a command (``m``, ``n``, ``batch``), and so of every count,
#: index and element number derived from one (a column holds at most ``2**SIZE_BITS``
#: elements).
SIZE_BITS = max(isa.FIELD[name].width for name in ("m", "n", "batch"))

#: The operations the core runs, numbered as in the ISA; the DMA engine and the ring run
#: the others.
CORE_OPS = tuple(op for op in isa.Opcode
                 if op not in isa.COLLECTIVES and not op.name.startswith("DMA_"))

#: Width of the core's operation field: enough for every core operation (0 is none).
OP_BITS = ceil_log2(max(CORE_OPS) + 1)


def command_layout(weight_addr_bits, act_addr_bits, line_bits):
    """Fields of a core command (``hw.core`` says how each operation uses them).

    ``op`` holds a :data:`CORE_OPS` value (a ``gen.spec.isa.Opcode``), or 0 for none.
    """
    return data.StructLayout({
        "op": OP_BITS,
        "m": SIZE_BITS,             # output features (rows of W); elements per column for LOAD_ROW
        "n": SIZE_BITS,             # input features (columns of W); elements per column for LOAD_COL
        "batch": SIZE_BITS,
        "wbase": weight_addr_bits,
        "abase": act_addr_bits,     # X (FORWARD, WGRAD), dY (BACKWARD), load target
        "abase2": act_addr_bits,    # dY (WGRAD); where FORWARD/BACKWARD fill their results
        "sp_base": line_bits,       # scratchpad matrix: first line
        "sp_lpc": line_bits,        # scratchpad matrix: lines per column
        "sp2_base": line_bits,      # BACKWARD: activations of the layer below (ReLU mask)
        "sp2_lpc": line_bits,
        "sp3_base": line_bits,      # LOSS_GRAD: the labels (one integer word per column)
        "sp3_lpc": line_bits,
        "flag": 1,                  # FORWARD: ReLU; BACKWARD: apply the ReLU mask
        "fused": 1,                 # WGRAD: the update fused into the gradient pass
        "fill": 1,                  # FORWARD, BACKWARD: results also into the activation banks
        "scalar": 32,               # WGRAD: -lr; LOSS_GRAD: 1/B (fp32)
        "scalar2": 32,              # WGRAD with momentum (flag): mu (fp32)
        "wbase2": weight_addr_bits, # WGRAD with momentum: the velocities' weight-bank base
    })


class EngineControl(wiring.Signature):
    """The running command, as the sequencer hands it to the engines.

    Parameters
    ----------
    layout : data.StructLayout
        The command layout (:func:`command_layout`).

    Members
    -------
    cmd : Out(layout)
        The command, held from the cycle after it is taken until the next one is.
    start : Out(1)
        The command is taken in this cycle (the engines reset their loop counters).
    active : Out(1)
        The command runs: from the cycle after ``start`` until an engine ends it.
    mt, nt : Out(SIZE_BITS)
        Tiles of the command: ``ceil(m / R)`` and ``ceil(n / C)``.
    outputs : Out(2 * SIZE_BITS)
        Outputs per PE of a ``FORWARD`` (``mt * batch``), ``BACKWARD`` (``nt * batch``) or
        ``WGRAD`` (``mt * nt``).
    groups : Out(SIZE_BITS)
        Accumulator groups of those outputs, ``ceil(outputs / G)``.
    """

    def __init__(self, layout):
        if not isinstance(layout, data.StructLayout):
            raise TypeError(f"layout must be a StructLayout, not {layout!r}")
        super().__init__({
            "cmd": Out(layout),
            "start": Out(1),
            "active": Out(1),
            "mt": Out(SIZE_BITS),
            "nt": Out(SIZE_BITS),
            "outputs": Out(2 * SIZE_BITS),
            "groups": Out(SIZE_BITS),
        })


def reducer_layout(group, line_bits, lanes):
    """One step of the edge reducers (``hw.reducers``), issued with a send micro-op.

    ``on``: a step; ``cols``: the column buses (BACKWARD), else the row buses; ``first`` /
    ``last``: the first and the last partial sum of an output; ``k``: the running sum (an
    accumulator of the group); ``e0``, ``line``, ``lanes``: where the results go; ``relu``,
    ``mask``: ReLU, or the ReLU derivative from the words at ``mask_line``; ``store_w``:
    STORE_W's weights, written from the row buses as they are.
    """
    return data.StructLayout({
        "on": 1, "cols": 1, "first": 1, "last": 1, "k": range(group),
        "e0": SIZE_BITS, "line": line_bits, "lanes": lanes, "relu": 1, "mask": 1,
        "mask_line": line_bits, "store_w": 1,
    })


def broadcast_layout(uop_layout, rows, cols, group, line_bits):
    """What reaches the PE array in the broadcast stage (the cycle after the issue).

    ``uop``: the PEs' micro-op; ``sel_col`` / ``sel_row``: the PE column sending on the row
    buses (taking a transfer) and the PE row sending on the column buses; ``sel_all``: every
    PE takes the transfer; ``bus_from``: 0 no bus word, 1 the scratchpad's words on the row
    buses, 2 on the column buses; ``red``: the reducers' step (:func:`reducer_layout`);
    ``tree_level`` / ``tree_cols``: a level of neighbour-link reduction (0: none) and its
    direction (down the columns); ``fill`` / ``fill_addr``: the reducers' results of this
    send, if it is an output's last, also go into the activation banks at ``fill_addr``
    (FORWARD and BACKWARD with ``fill``).
    """
    lanes = max(rows, cols)
    levels = max(1, ceil_log2(lanes))
    return data.StructLayout({
        "uop": uop_layout,
        "sel_col": range(cols),
        "sel_row": range(rows),
        "sel_all": 1,
        "bus_from": 2,
        "red": reducer_layout(group, line_bits, lanes),
        "tree_level": range(levels + 1),
        "tree_cols": 1,
        "fill": 1,
        "fill_addr": uop_layout["aaddr"].width,
    })


def read_layout(line_bits, lanes):
    """A lane read of the scratchpad (``hw.scratchpad.Scratchpad``'s ``rd_*`` ports)."""
    return data.StructLayout({"en": 1, "e0": SIZE_BITS, "line": line_bits, "lanes": lanes})


def issue_layout(uop_layout, rows, cols, group, line_bits):
    """An engine's requests of one cycle: to the PE array (:func:`broadcast_layout`) and a
    scratchpad read (:func:`read_layout`), whose words meet the micro-op that takes them in
    the broadcast stage."""
    return data.StructLayout({
        "bus": broadcast_layout(uop_layout, rows, cols, group, line_bits),
        "rd": read_layout(line_bits, max(rows, cols)),
    })


def _prefixes(paths):
    return [tuple(path.split(".")) for path in paths]


def request_layout(layout, paths):
    """The part of ``layout`` at ``paths`` (such as ``"bus.uop"`` or ``"rd.en"``): what
    an engine drives of an issue. Its fields keep their names and nesting."""
    prefixes = _prefixes(paths)

    def walk(layout, path):
        fields = {}
        for name, field in layout:
            here = path + (name,)
            if any(here[:len(prefix)] == prefix for prefix in prefixes):
                fields[name] = field.shape
            elif isinstance(field.shape, data.StructLayout) and \
                    any(prefix[:len(here)] == here for prefix in prefixes):
                fields[name] = walk(field.shape, here)
        return data.StructLayout(fields)

    return walk(layout, ())


def requested(layout, value):
    """``value`` (of a :func:`request_layout` of ``layout``) as a ``layout`` value, the
    bits it has not 0: one expression, so that an engine's ``issue`` port has every bit
    driven and no bit that only a constant drives (a process the Verilog simulators never
    run)."""
    bits, parts = value.as_value(), []

    def walk(layout, part, offset):
        for name, field in layout:
            if name not in part.members:
                parts.append(Const(0, field.width))
            elif part[name].shape == field.shape:
                start = offset + part[name].offset
                parts.append(bits[start:start + field.width])
            else:
                walk(field.shape, part[name].shape, offset + part[name].offset)

    walk(layout, value.shape(), 0)
    return Cat(*parts)


def lane_mask(e0, limit, count, lanes):
    """Lane enables of a lane access from element ``e0``: lane ``l`` is on when element
    ``e0 + l`` exists (below ``limit``) and ``l`` is one of the ``count`` real lanes."""
    return Cat(*[(e0 + l < limit) if l < count else Const(0, 1) for l in range(lanes)])


def popcount(value):
    """The number of set bits of ``value``."""
    return sum((value[i] for i in range(len(value))), Const(0, 8))
