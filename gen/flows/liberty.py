"""Standard-cell libraries for the ``liberty`` synthesis target: the known process design
kits (:data:`PDKS`), a Liberty file's SHA-256, and identical modules folded into one.

A PDK name stands for a Liberty file installed by a system package (``make asic-lib``
installs Debian's ``qflow-tech-osu018``); :func:`pdk_liberty` gives its path or says how
to install it.

:func:`fold_identical_modules` rewrites the Verilog that Amaranth emits so that identical
modules are defined once: Amaranth emits one module per elaborated instance (every PE of
an array is a module of its own, ``top.core.pe_0_0``, ``top.core.pe_0_1``...), so a
hierarchical synthesis maps the same logic once per PE. Yosys optimizes no logic across
module boundaries when the hierarchy is kept, so mapping one copy and counting it once per
instance gives the same cells as mapping every copy; only the time changes.
"""

import hashlib
import re
from pathlib import Path

__all__ = ["PDKS", "PdkError", "pdk_liberty", "file_sha256", "split_modules",
           "fold_identical_modules", "module_digests", "module_children",
           "drop_zero_initializers"]

#: Known PDKs: name -> (Liberty file, the Debian package that installs it).
PDKS = {
    "osu018": (Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib"), "qflow-tech-osu018"),
}


class PdkError(ValueError):
    """An unknown PDK name, or a known PDK whose Liberty file is not installed."""


def pdk_liberty(name, pdks=None):
    """The Liberty file of the PDK ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`PDKS`.
    pdks : dict or None
        The PDK table (default :data:`PDKS`; tests pass their own).

    Raises
    ------
    PdkError
        ``name`` is not a known PDK (the message lists the known ones), or its Liberty file
        is missing (the message names ``make asic-lib`` and the package).
    """
    pdks = PDKS if pdks is None else pdks
    if name not in pdks:
        raise PdkError(f"--pdk must be one of {', '.join(sorted(pdks))}, not {name!r}")
    path, package = pdks[name]
    if not Path(path).is_file():
        raise PdkError(f"the {name} Liberty file {str(path)!r} is not installed: run "
                       f"`make asic-lib` (installs the Debian package {package})")
    return Path(path)


def file_sha256(path):
    """The SHA-256 of a file's bytes, in hexadecimal."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


_MODULE = re.compile(r"^module\s+(\\\S+|[A-Za-z_][\w$]*)\s*[(;]", re.M)
_END = re.compile(r"^endmodule\b[^\n]*\n?", re.M)
# Yosys' Verilog backend numbers some local names from a global counter
# (``\$auto$verilog_backend.cc:2355:dump_module$17``): the same module emitted twice differs
# in them only.
_AUTO = re.compile(r"(\\\$auto\$[^\s:]+:\d+:[\w]+)\$\d+")


def split_modules(text):
    """``(head, [(name, source)...], tail)``: the module definitions of a Verilog text in
    order (a name as written, ``\\`` of an escaped name dropped), with the text before the
    first and after the last."""
    modules, pos, head = [], 0, None
    for match in _MODULE.finditer(text):
        if match.start() < pos:
            continue
        if head is None:
            head = text[:match.start()]
        end = _END.search(text, match.end())
        if end is None:
            raise ValueError(f"module {match.group(1)!r} has no endmodule")
        modules.append((match.group(1).lstrip("\\"), text[match.start():end.end()]))
        pos = end.end()
    return (text if head is None else head), modules, text[pos:]


def _escaped(name):
    return "\\" + name + " "


def fold_identical_modules(text):
    """Define identical modules once.

    Two modules are identical when their sources are equal once their own names, their
    submodules' names (already folded, deepest first) and Yosys' numbered local names are
    set aside. Each module left is the first of its kind; every instance of a folded one
    names the first instead.

    Returns
    -------
    (str, dict)
        The Verilog text, and ``{folded module: the module that stands for it}``.
    """
    head, modules, tail = split_modules(text)
    names = [name for name, _ in modules]
    # Children before parents: a parent's key needs its children's folding. Amaranth names
    # a submodule by its parent's name and a dot, so the longer path is deeper.
    order = sorted(range(len(modules)), key=lambda i: -names[i].count("."))
    alias, kinds, sources = {}, {}, dict(modules)
    for i in order:
        name = names[i]
        source = _rename_children(sources[name], name, alias)
        sources[name] = source
        key = _AUTO.sub(r"\1$N", source.replace(_escaped(name), "\\@self ", 1))
        if key in kinds:
            alias[name] = kinds[key]
        else:
            kinds[key] = name
    kept = [sources[name] for name in names if name not in alias]
    return head + "".join(kept) + tail, alias


def _rename_children(source, name, alias):
    """``source`` with every instance of a folded child naming the child's stand-in."""
    for child, canonical in alias.items():
        if child.startswith(name + ".") and _escaped(child) in source:
            source = source.replace(_escaped(child), _escaped(canonical))
    return source



def module_digests(text, salt=""):
    """``{module: SHA-256}`` of each module of a Verilog text, by content: a module's own
    source with its name, Yosys' numbered local names and its submodules' names replaced by
    the submodules' digests (so a digest covers everything below the module), and ``salt``
    (the library and the script, say).

    Two modules of two designs with the same digest synthesize to the same cells (the
    hierarchy kept), whatever their names: the cache of :func:`gen.flows.synth.synth_generic`
    keys on it.
    """
    _, modules, _ = split_modules(text)
    sources = dict(modules)
    digests = {}
    for name in sorted(sources, key=lambda n: -n.count(".")):
        source = _AUTO.sub(r"\1$N", sources[name])
        source = _MODULE.sub(lambda m: m.group(0).replace(m.group(1), "@self", 1)
                             if m.group(1).lstrip("\\") == name else m.group(0), source, 1)
        for child in sorted(digests, key=len, reverse=True):
            if child.startswith(name + ".") or _escaped(child) in source:
                source = source.replace(_escaped(child), f"\\@{digests[child]} ")
        digests[name] = hashlib.sha256((salt + "\n" + source).encode()).hexdigest()
    return digests


def module_children(text):
    """``{module: {the modules it instantiates}}`` of a Verilog text (Amaranth's escaped
    names)."""
    _, modules, _ = split_modules(text)
    names = [name for name, _ in modules]
    return {name: {child for child in names if child != name and _escaped(child) in source}
            for name, source in modules}


# An initializer block that sets array elements to zero, one per line, as Yosys' Verilog
# backend writes it (Amaranth's memories are initialized to zero unless given contents).
_ZERO_INIT = re.compile(r"^  initial begin\n((?:    (\\?[\w$.]+) ?\[\d+\] = \d+'[dhb]0+;\n)+)  end\n",
                        re.M)


def drop_zero_initializers(text):
    """Drop the all-zero initializers of the memories that have a write port.

    Such a memory is a macro for the ``cmos`` and ``liberty`` targets: its initial contents
    change no logic, but Yosys' front end reads one assignment per word, which takes minutes
    for a large memory (the default preset's 65536-word scratchpad: more than 70 s of CPU
    time, against 1.5 s without). A memory without a write port (a ROM) is logic, and keeps
    its contents.

    Returns
    -------
    (str, list of str)
        The Verilog text and the names of the memories whose initializer was dropped.
    """
    dropped = []

    def in_module(source):
        def drop(match):
            names = {line.split("[", 1)[0].strip() for line in match.group(1).splitlines()}
            if len(names) != 1:
                return match.group(0)
            name = names.pop()
            # Written by the module itself: a memory with a write port.
            if re.search(re.escape(name) + r" ?\[[^\]]*\] <=", source) is None:
                return match.group(0)
            dropped.append(name.lstrip("\\"))
            return ""
        return _ZERO_INIT.sub(drop, source)

    head, modules, tail = split_modules(text)
    return head + "".join(in_module(source) for _, source in modules) + tail, dropped
