"""Registers into the ECP5's hard blocks: a netlist pass between Yosys and nextpnr-ecp5.

Yosys (0.70) maps memories to DP16KD block RAMs with their output registers off
(``REGMODE = "NOREG"``, ``share/lattice/brams_map_16kd.v``) and multiplies to MULT18X18D
blocks with their input and output registers off (``REG_*_CLK = "NONE"``,
``dsp_map_18x18.v``). A register the design puts right after a read, or before and after a
multiplier, then stays in the fabric, and the path to or from it carries the block's own
delay: about 6 ns of a block RAM's clock-to-output, about 4.5 ns of a multiplier's, out of
the 6.7 ns of a 150 MHz cycle. This pass moves such registers into the blocks:

* **block-RAM output registers**: where every used data output of a DP16KD port drives one
  flip-flop and nothing else, the port's output register is switched on
  (``REGMODE_x = "OUTREG"``, its enable ``OCEx`` the flip-flops'), its outputs take over the
  flip-flops' nets and the flip-flops go;
* **multiplier output registers**: the same for a MULT18X18D's product outputs
  (``REG_OUTPUT_CLK``);
* **multiplier input registers**: where every non-constant bit of operand ``A`` (or ``B``)
  comes from a flip-flop, the block registers the flip-flops' inputs itself
  (``REG_INPUTA_CLK``); a flip-flop that also drives other logic stays for it. (A constant
  bit, such as a significand's leading one, is registered with them: it reads zero until
  the block's first clock edge after configuration, which the design's reset covers.)

Each register taken must be a plain one: clocked by the block's clock on the rising edge,
with no set or reset, starting at zero (every register of a hard block starts at zero too),
all those of one block port sharing one clock enable. The behaviour is then the same cycle
for cycle: the block's register holds what the flip-flops held. Nothing else is touched: a
port whose outputs feed logic, or whose registers have a reset, another clock or several
enables, stays as it is. A design gets the pass by keeping those registers free of logic
and reset (``hw.pe``: the bank words' ``raw`` registers, the multiplier's operand and
product registers).

Run as ``python -m chrysalis.gen.flows.hard_registers NETLIST.json``: it rewrites the
netlist in place and prints what it changed.
"""

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

__all__ = ["Absorbed", "absorb_registers", "absorb_file", "summary"]

_BRAM_OUTPUTS = 18   # DOA0..DOA17, DOB0..DOB17
_MUL_INPUTS = 18     # A0..A17, B0..B17
_MUL_OUTPUTS = 36    # P0..P35
_CONTROLS = 4        # a MULT18X18D's CLK0..3, CE0..3, RST0..3
_ZERO, _ONE = "0", "1"


class Absorbed(NamedTuple):
    """What the pass changed: block-RAM ports with their output register on, multiplier
    operand and product registers on, and the flip-flops removed (a flip-flop kept for other
    logic is not counted)."""
    bram_ports: int = 0
    mul_inputs: int = 0
    mul_outputs: int = 0
    flip_flops: int = 0


def summary(absorbed):
    """The pass's one-line report (the board build reads it back from its log)."""
    return (f"hard_registers: {absorbed.bram_ports} block-RAM output register(s), "
            f"{absorbed.mul_inputs} multiplier input register(s), {absorbed.mul_outputs} "
            f"multiplier output register(s) on; {absorbed.flip_flops} flip-flop(s) fewer")


class _Module:
    """One module of the netlist with its connectivity: who drives a bit, who reads it."""

    def __init__(self, module):
        self.cells = module.get("cells", {})
        self.sinks = defaultdict(list)
        self.driver = {}
        for name, cell in self.cells.items():
            directions = cell.get("port_directions", {})
            for port, bits in cell["connections"].items():
                for bit in bits:
                    if directions.get(port) == "input":
                        self.sinks[bit].append((name, port))
                    elif directions.get(port) == "output":
                        self.driver[bit] = (name, port)
        self.read_out = set()
        for port in module.get("ports", {}).values():
            if port["direction"] in ("output", "inout"):
                self.read_out.update(port["bits"])
        self.removed = set()

    def plain_ff(self, name):
        """``(clock bit, enable bit or "1", D bits)`` of a TRELLIS_FF with no set or reset,
        clocked on the rising edge and starting at zero; None for any other cell."""
        cell = self.cells[name]
        if cell["type"] != "TRELLIS_FF" or name in self.removed:
            return None
        params, conns = cell["parameters"], cell["connections"]
        if params.get("CLKMUX", "CLK").strip() != "CLK":
            return None
        if params.get("REGSET", "RESET").strip() != "RESET":
            return None
        if conns.get("LSR", [_ZERO]) != [_ZERO] or params.get("LSRMUX", "LSR").strip() != "LSR":
            return None
        cemux = params.get("CEMUX", "1").strip()
        if cemux == "1":
            enable = _ONE
        elif cemux == "CE":
            enable = conns["CE"][0]
        else:
            return None
        return conns["CLK"][0], enable, conns["DI"]

    def sole_ff(self, bit):
        """The plain flip-flop that is the only reader of ``bit`` (its ``DI``): ``(name,
        clock, enable)``; ``"unused"`` when nothing reads it; None otherwise."""
        if bit in self.read_out:
            return None
        users = self.sinks.get(bit, [])
        if not users:
            return "unused"
        if len(users) != 1 or users[0][1] != "DI":
            return None
        plain = self.plain_ff(users[0][0])
        return None if plain is None else (users[0][0], plain[0], plain[1])

    def output_registers(self, cell, pins, clock):
        """The flip-flops that alone read ``pins`` of ``cell``, all on ``clock`` (None: any
        clock, set from the first), with one enable: ``(pairs, clock, enable)`` or None."""
        pairs, enables = [], set()
        for pin in pins:
            bit = cell["connections"].get(pin, [None])[0]
            if not isinstance(bit, int):
                continue
            found = self.sole_ff(bit)
            if found is None:
                return None
            if found == "unused":
                continue
            name, ff_clock, enable = found
            clock = ff_clock if clock is None else clock
            if ff_clock != clock:
                return None
            enables.add(enable)
            pairs.append((pin, name))
        if not pairs or len(enables) != 1:
            return None
        return pairs, clock, enables.pop()

    def take_outputs(self, cell, pairs):
        """The flip-flops' nets move to the cell's pins, and the flip-flops go."""
        for pin, name in pairs:
            cell["connections"][pin] = list(self.cells[name]["connections"]["Q"])
            self.removed.add(name)


def absorb_registers(netlist):
    """Move plain registers into the DP16KD and MULT18X18D blocks of every module of the
    Yosys JSON ``netlist`` (a dict, changed in place; module docstring). Returns
    :class:`Absorbed`."""
    total = Absorbed()
    for module in netlist["modules"].values():
        m = _Module(module)
        counts = [0, 0, 0]
        for name, cell in list(m.cells.items()):
            if cell["type"] == "DP16KD":
                counts[0] += sum(_bram_port(m, cell, port) for port in "AB")
            elif cell["type"] == "MULT18X18D":
                inputs, outputs = _multiplier(m, name, cell)
                counts[1] += inputs
                counts[2] += outputs
        for name in m.removed:
            del m.cells[name]
        total = Absorbed(total.bram_ports + counts[0], total.mul_inputs + counts[1],
                         total.mul_outputs + counts[2], total.flip_flops + len(m.removed))
    return total


def _bram_port(m, bram, port):
    params, conns = bram["parameters"], bram["connections"]
    if params.get(f"REGMODE_{port}", "NOREG").strip() != "NOREG":
        return False
    if params.get(f"CLK{port}MUX", f"CLK{port}").strip() != f"CLK{port}":
        return False
    if conns.get(f"OCE{port}") != [_ONE] or conns.get(f"RST{port}") != [_ZERO]:
        return False
    clock = conns[f"CLK{port}"][0]
    found = m.output_registers(bram, [f"DO{port}{i}" for i in range(_BRAM_OUTPUTS)], clock)
    if found is None:
        return False
    pairs, _, enable = found
    m.take_outputs(bram, pairs)
    conns[f"OCE{port}"] = [enable]
    params[f"REGMODE_{port}"] = "OUTREG"
    return True


def _multiplier(m, name, mul):
    """Input registers of A and B, then the output register, of one MULT18X18D: ``(inputs
    taken, outputs taken)``. A block Yosys left with any register or control in use is
    left alone."""
    params, conns = mul["parameters"], mul["connections"]
    if any(str(value).strip() not in ("NONE", "") for key, value in params.items()
           if key.startswith("REG_") and key.endswith("_CLK")):
        return 0, 0
    controls = [f"{kind}{i}" for kind in ("CLK", "CE", "RST") for i in range(_CONTROLS)]
    if any(conns.get(pin, [_ZERO]) not in ([_ZERO], ["x"]) for pin in controls):
        return 0, 0
    clock, enables, plans = None, [], []

    def enable_index(enable):
        if enable not in enables:
            enables.append(enable)
        return enables.index(enable)

    for operand in "AB":
        if conns.get(f"SIGNED{operand}", [_ZERO]) not in ([_ZERO], [_ONE]):
            continue     # a signedness that changes would need registering with it
        found = _input_registers(m, conns, operand, clock)
        if found is None:
            continue
        clock = found[0]
        plans.append((f"INPUT{operand}", found[1], found[2]))
    output = m.output_registers(mul, [f"P{i}" for i in range(_MUL_OUTPUTS)], clock)
    if output is not None:
        clock = output[1]
    planned = {enable for _, _, enable in plans} | ({output[2]} if output else set())
    if clock is None or len(planned) > _CONTROLS:
        return 0, 0
    for group, feeds, enable in plans:
        rewired = {pin for pin, _, _ in feeds}
        for pin, d_bit, ff_name in feeds:
            conns[pin] = [d_bit]
            # A flip-flop that fed nothing else is gone; one that does stays for it.
            q_bit = m.cells[ff_name]["connections"]["Q"][0]
            if all(cell == name and pin in rewired for cell, pin in m.sinks.get(q_bit, [])) \
                    and q_bit not in m.read_out:
                m.removed.add(ff_name)
        index = enable_index(enable)
        params.update({f"REG_{group}_CLK": "CLK0", f"REG_{group}_CE": f"CE{index}",
                       f"REG_{group}_RST": "RST0"})
    if output is not None:
        m.take_outputs(mul, output[0])
        index = enable_index(output[2])
        params.update({"REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": f"CE{index}",
                       "REG_OUTPUT_RST": "RST0"})
    directions = mul.setdefault("port_directions", {})
    conns["CLK0"] = [clock]
    for index in range(_CONTROLS):
        conns[f"CE{index}"] = [enables[index]] if index < len(enables) else [_ONE]
        conns[f"RST{index}"] = [_ZERO]
    for pin in controls:
        directions[pin] = "input"
    for index in range(1, _CONTROLS):
        conns[f"CLK{index}"] = [_ZERO]
    return len(plans), int(output is not None)


def _input_registers(m, conns, operand, clock):
    """``(clock, [(pin, D bit, flip-flop)], enable)`` when every non-constant bit of the
    operand comes from a plain flip-flop's ``Q``, on one clock with one enable; else None.
    The block then registers the flip-flops' ``D`` itself, and its constant bits with them:
    until the block's first clock edge after configuration its input register reads zero
    where the fabric had a constant one, in a cycle that the design's reset covers."""
    feeds, enables = [], set()
    for index in range(_MUL_INPUTS):
        pin = f"{operand}{index}"
        bit = conns.get(pin, [_ZERO])[0]
        if not isinstance(bit, int):
            continue          # a constant (a significand's leading one): see below
        source = m.driver.get(bit)
        if source is None or source[1] != "Q":
            return None
        plain = m.plain_ff(source[0])
        if plain is None:
            return None
        ff_clock, enable, d_bits = plain
        clock = ff_clock if clock is None else clock
        if ff_clock != clock:
            return None
        enables.add(enable)
        feeds.append((pin, d_bits[0], source[0]))
    if not feeds or len(enables) != 1:
        return None
    return clock, feeds, enables.pop()


def absorb_file(path):
    """:func:`absorb_registers` on the netlist file ``path``, rewritten in place (through a
    temporary file, so a reader never sees half of it). Returns :class:`Absorbed`."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    absorbed = absorb_registers(netlist)
    temporary = path.with_name(path.name + ".hard_registers")
    temporary.write_text(json.dumps(netlist))
    os.replace(temporary, path)
    return absorbed


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m chrysalis.gen.flows.hard_registers NETLIST.json",
              file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"hard_registers: no netlist at {path}", file=sys.stderr)
        return 1
    print(f"{summary(absorb_file(path))}, in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
