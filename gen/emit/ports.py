"""The top level's ports: read from the emitted Verilog, and grouped into bus interfaces.

:func:`verilog_ports` lists the ports of a module of Yosys-written Verilog;
:func:`bus_interfaces` groups the accelerator's ports by the interface they belong to (the
AXI4-Lite register slave ``s_axil_*``, the AXI4 DMA master ``m_axi_*`` and the interrupt
``irq``), with each interface's logical signal names (``awaddr``) mapped to its ports
(``s_axil_awaddr``), as IP-XACT and FPGA tools' interface inference expect.
"""

import re

from .hdl import CLOCK, RESET

__all__ = ["INTERFACES", "verilog_ports", "bus_interfaces"]

#: The top level's bus interfaces: ``(name, protocol, mode)``. An interface's ports are
#: ``name`` itself or begin with ``name + "_"``. The modes are IP-XACT's names (AMBA now says
#: subordinate and manager); an interrupt's sender is its master.
INTERFACES = (
    ("s_axil", "AXI4-Lite", "slave"),
    ("m_axi", "AXI4", "master"),
    ("irq", "interrupt", "master"),
)

_MODULE = re.compile(r"^module\s+(\\\S+\s|\w+)\s*\(([^)]*)\);(.*?)^endmodule", re.M | re.S)
_PORT = re.compile(r"^\s*(input|output|inout)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?"
                   r"(\\\S+\s|\w+)\s*;", re.M)


def verilog_ports(text, module, order=()):
    """The ports of ``module`` in Yosys-written Verilog ``text``.

    Parameters
    ----------
    text : str
        Verilog as written by Yosys (one declaration per line).
    module : str
        Name of the module.
    order : sequence of str
        Preferred order (the component's signature); ports not in it (the ``clk`` and
        ``rst`` that Amaranth adds) come first, in the order of the module header.

    Returns
    -------
    list of dict
        ``{"name": str, "dir": "in" | "out" | "inout", "width": int}`` per port.

    Raises
    ------
    ValueError
        ``module`` is not in ``text``.
    """
    for match in _MODULE.finditer(text):
        if match[1].strip().lstrip("\\") == module:
            header, body = match[2], match[3]
            break
    else:
        raise ValueError(f"module must be a module of the Verilog, not {module!r}")
    declared = {}
    for port in _PORT.finditer(body):
        width = abs(int(port[2]) - int(port[3])) + 1 if port[2] else 1
        declared[port[4].strip().lstrip("\\")] = {"dir": port[1].removesuffix("put"),
                                                   "width": width}
    listed = [name.strip().lstrip("\\") for name in header.split(",") if name.strip()]
    ranked = [name for name in listed if name not in order]
    ranked += [name for name in order if name in listed]
    return [{"name": name, **declared[name]} for name in ranked]


def bus_interfaces(ports):
    """The bus interfaces of :data:`INTERFACES` that ``ports`` hold.

    Parameters
    ----------
    ports : list of dict
        The top level's ports, as :func:`verilog_ports` gives them.

    Returns
    -------
    list of dict
        Per interface found, in the order of :data:`INTERFACES`: ``name``, ``protocol``,
        ``mode``, ``clock`` and ``reset`` (the ports it is synchronous to), ``ports`` (each
        logical signal name to its port name, in port order) and the widths the protocol
        has: ``addr_width`` and ``data_width`` for AXI4-Lite, and ``id_width`` for AXI4;
        ``sensitivity`` (``"level-high"``) for the interrupt.
    """
    widths = {port["name"]: port["width"] for port in ports}
    found = []
    for name, protocol, mode in INTERFACES:
        signals = {}
        for port in ports:
            if port["name"] == name:
                signals[name] = port["name"]
            elif port["name"].startswith(name + "_"):
                signals[port["name"].removeprefix(name + "_")] = port["name"]
        if not signals:
            continue
        interface = {"name": name, "protocol": protocol, "mode": mode,
                     "clock": CLOCK["port"], "reset": RESET["port"], "ports": signals}
        if protocol.startswith("AXI4"):
            interface["addr_width"] = widths[signals["awaddr"]]
            interface["data_width"] = widths[signals["wdata"]]
        if protocol == "AXI4":
            interface["id_width"] = widths[signals["awid"]]
        if protocol == "interrupt":
            # `irq` is high while an enabled interrupt is pending (IRQ_STATUS & IRQ_ENABLE).
            interface["sensitivity"] = "level-high"
        found.append(interface)
    return found
