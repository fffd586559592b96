"""AXI4 and AXI4-Lite: signatures, flat port names and a register slave.

The signatures describe the manager (master) side; a subordinate takes them flipped
(``In(AXI4LiteSignature(...))``). Top-level ports are flat, with the usual names
(``s_axil_awaddr``, ``m_axi_arvalid``) so that FPGA tools and cocotbext-axi
(``AxiLiteBus.from_prefix(dut, "s_axil")``) recognise the buses: :func:`flat_members` makes
them and :func:`connect_flat` wires them to a nested interface.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, Flow

__all__ = ["AXI4LiteSignature", "AXI4Signature", "Resp", "Burst", "flat_members",
           "connect_flat", "AXI4LiteRegisters"]


class Resp:
    """Values of the ``xRESP`` signals."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class Burst:
    """Values of ``AxBURST``."""
    FIXED = 0
    INCR = 1
    WRAP = 2


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite bus, manager side, 32-bit data.

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` and ``araddr``.
    """

    def __init__(self, addr_width):
        if not isinstance(addr_width, int) or addr_width < 1:
            raise TypeError(f"addr_width must be a positive integer, not {addr_width!r}")
        self.addr_width = addr_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AXI4Signature(wiring.Signature):
    """An AXI4 bus, manager side.

    Parameters
    ----------
    addr_width : int
    data_width : int
        A power of two from 32 to 1024.
    id_width : int
    """

    def __init__(self, addr_width, data_width, id_width=4):
        if not isinstance(addr_width, int) or addr_width < 12:
            raise TypeError(f"addr_width must be an integer of at least 12, not {addr_width!r}")
        if data_width not in (32, 64, 128, 256, 512, 1024):
            raise ValueError(f"data_width must be a power of two from 32 to 1024, "
                             f"not {data_width!r}")
        if not isinstance(id_width, int) or id_width < 1:
            raise TypeError(f"id_width must be a positive integer, not {id_width!r}")
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        members = {}
        for ch in ("aw", "ar"):
            members.update({
                f"{ch}id": Out(id_width), f"{ch}addr": Out(addr_width), f"{ch}len": Out(8),
                f"{ch}size": Out(3), f"{ch}burst": Out(2), f"{ch}lock": Out(1),
                f"{ch}cache": Out(4), f"{ch}prot": Out(3), f"{ch}valid": Out(1),
                f"{ch}ready": In(1),
            })
        members.update({
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })
        super().__init__(members)


def flat_members(prefix, signature):
    """Members ``{prefix}_{name}`` of a flat port list with the flows of ``signature`` (pass
    ``signature.flip()`` for the subordinate side)."""
    return {f"{prefix}_{name}": member for name, member in signature.members.items()}


def connect_flat(m, owner, prefix, interface):
    """Wire the flat ports ``owner.{prefix}_*`` to ``interface`` (a nested interface of a
    submodule with the same members, seen from the outside)."""
    for name, member in interface.signature.members.items():
        port = getattr(owner, f"{prefix}_{name}")
        inner = getattr(interface, name)
        # A member that flows out of the submodule flows out of the owner too.
        if member.flow == Flow.Out:
            m.d.comb += port.eq(inner)
        else:
            m.d.comb += inner.eq(port)


class AXI4LiteRegisters(wiring.Component):
    """An AXI4-Lite subordinate over a map of 32-bit registers.

    One read and one write are handled at a time. A write is taken when its address and
    data are both valid; the register's ``w_<name>`` pulses for one cycle with ``w_data``: the
    bytes strobed, and the others from the register's current read value (zeros for a
    write-one-to-clear register, so that they clear nothing). An offset that holds no register
    (reads and writes), a write to a read-only register, and a write that the register
    refuses (``w_err``) answer SLVERR and change nothing.

    Parameters
    ----------
    registers : sequence of ``gen.spec.isa.Register``
    addr_width : int
        Width of the bus address; offsets are taken modulo ``2**addr_width``.

    Members
    -------
    bus : In(AXI4LiteSignature(addr_width))
    r_<name> : In(32)
        The read value of each readable register.
    w_<name> : Out(1), w_err_<name> : In(1)
        For each writable register: the write pulse, and a refusal (SLVERR, no pulse).
    w_data : Out(32)
        The value written (with partial strobes merged into the read value).
    """

    def __init__(self, registers, addr_width=12):
        self.registers = tuple(registers)
        offsets = [r.offset for r in self.registers]
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"register offsets must be distinct, not {offsets!r}")
        if any(o % 4 or o >> addr_width for o in offsets):
            raise ValueError(f"register offsets must be word aligned and below "
                             f"2**{addr_width}, not {offsets!r}")
        self.addr_width = addr_width
        members = {"bus": In(AXI4LiteSignature(addr_width)), "w_data": Out(32)}
        for r in self.registers:
            if r.readable:
                members[f"r_{r.name.lower()}"] = In(32)
            if r.writable:
                members[f"w_{r.name.lower()}"] = Out(1)
                members[f"w_err_{r.name.lower()}"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        # --- reads: AR taken when no response is pending, answered the next cycle ---
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rresp.eq(2), bus.rdata.eq(0)]
            with m.Switch(bus.araddr[2:]):
                for r in self.registers:
                    with m.Case(r.offset >> 2):
                        value = getattr(self, f"r_{r.name.lower()}") if r.readable else 0
                        m.d.sync += [bus.rresp.eq(0), bus.rdata.eq(value)]

        # --- writes: AW and W taken together when no response is pending ---
        take = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(take), bus.wready.eq(take)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(take):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(2)]
            with m.Switch(bus.awaddr[2:]):
                for r in self.registers:
                    if not r.writable:
                        continue
                    with m.Case(r.offset >> 2):
                        # Unstrobed bytes keep the register's value, except in a
                        # write-one-to-clear register, where they must clear nothing.
                        keep = r.readable and r.access != "w1c"
                        old = getattr(self, f"r_{r.name.lower()}") if keep else 0
                        merged = Signal(32, name=f"merged_{r.name.lower()}")
                        for byte in range(4):
                            sl = slice(8 * byte, 8 * byte + 8)
                            m.d.comb += merged[sl].eq(
                                Mux(bus.wstrb[byte], bus.wdata[sl], _byte(old, byte)))
                        err = getattr(self, f"w_err_{r.name.lower()}")
                        with m.If(~err):
                            m.d.comb += [getattr(self, f"w_{r.name.lower()}").eq(1),
                                         self.w_data.eq(merged)]
                            m.d.sync += bus.bresp.eq(0)
        return m


def _byte(value, index):
    """Byte ``index`` of a signal or of an integer."""
    if isinstance(value, int):
        return (value >> (8 * index)) & 0xFF
    return value[8 * index:8 * index + 8]
