"""The Verilog of a config, elaborated once per machine instead of once per simulation.

Elaborating and converting a config (``chrysalis.gen.emit.verilog.emit``) takes seconds of
CPU (the ``tiny`` preset about 5 s, ``default`` about 20 s), and every simulation of a config
needs its Verilog: each test, each ``chrysalis train`` epoch, each pytest worker. The text
depends only on the config, the gateware and emission sources, and the Amaranth and Yosys
that convert it, so :func:`cached_verilog` keeps it under :func:`cache_dir`, named after a
hash of all of those: a changed config, source file or tool gives a new name, never a stale
file. Two processes that ask for the same Verilog at once: one converts, the other waits
for it. :func:`cached_design` does the same for a design that is not a config's accelerator
(the board self-test with its stored image, say), keyed by what the caller says it depends
on besides those sources and tools.
"""

import hashlib
import os
from importlib import resources
from pathlib import Path

from chrysalis.gen.spec.config import Config

from .runner import cache_root, file_lock

__all__ = ["cache_dir", "verilog_key", "cached_verilog", "design_key", "cached_design"]

#: Bumped when what goes into a cached file changes in a way the key does not see.
_SCHEME = "verilog-cache-1"

#: The packages whose sources shape the Verilog: the gateware, the spec it reads, and the
#: emission (``with_timescale`` and the initializer rewrite edit the converted text).
_SOURCE_PACKAGES = ("chrysalis.hw", "chrysalis.gen.spec", "chrysalis.gen.emit")

_memo = {}


def cache_dir():
    """Where converted Verilog is kept: ``<cache root>/verilog``
    (``chrysalis.sim.verify.runner.cache_root``: ``$CHRYSALIS_CACHE`` if set)."""
    return cache_root() / "verilog"


def _sources_digest():
    """A hash of every Python source of :data:`_SOURCE_PACKAGES` (computed once per process)."""
    if "sources" not in _memo:
        digest = hashlib.sha256()
        for package in _SOURCE_PACKAGES:
            root = resources.files(package)
            for path in sorted(Path(str(root)).rglob("*.py")):
                digest.update(f"{package}/{path.relative_to(Path(str(root)))}\0".encode())
                digest.update(path.read_bytes())
        _memo["sources"] = digest.hexdigest()
    return _memo["sources"]


def _tools():
    """The Amaranth and Yosys that convert the design (asked once per process)."""
    if "tools" not in _memo:
        from chrysalis.gen.emit.sidecar import tool_versions
        versions = tool_versions()
        _memo["tools"] = f"amaranth {versions['amaranth']}; yosys {versions['yosys']}"
    return _memo["tools"]


def verilog_key(config):
    """The name :func:`cached_verilog` keeps the Verilog of ``config`` under: a hash of the
    config (its name included: it names the module), the sources and the tools."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    digest = hashlib.sha256()
    for part in (_SCHEME, config.to_toml(), _sources_digest(), _tools()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def cached_verilog(config, folder, *, cache=None):
    """Write the Verilog of ``config`` (what ``emit(config, ...)["verilog"]`` writes) to
    ``folder/<config.name>.v``, converting it only if no cached copy exists.

    Parameters
    ----------
    config : chrysalis.gen.spec.config.Config
    folder : path-like
        Where the file goes (created when missing).
    cache : path-like, optional
        Folder of cached Verilog (default :func:`cache_dir`).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    chrysalis.gen.spec.config.ConfigError
        A config the RTL cannot build; nothing is written or cached.
    """
    def convert():
        from chrysalis.gen.emit.verilog import emit
        return Path(emit(config, folder)["verilog"]).read_text()

    return _through_cache(verilog_key(config), convert, Path(folder) / f"{config.name}.v",
                          cache)


def design_key(name, parts):
    """The name :func:`cached_design` keeps a design's Verilog under: a hash of ``name``, of
    ``parts`` (strings naming what the text depends on besides the sources and the tools) and
    of the gateware, spec and emission sources and the tools."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Verilog module name, not {name!r}")
    parts = tuple(parts)
    if not all(isinstance(part, str) for part in parts):
        raise TypeError(f"parts must be strings, not {parts!r}")
    digest = hashlib.sha256()
    for part in (_SCHEME, "design", name, *parts, _sources_digest(), _tools()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def cached_design(name, parts, convert, folder, *, cache=None):
    """Write the Verilog text that ``convert()`` returns to ``folder/<name>.v``, calling it
    only if no cached copy exists: :func:`cached_verilog` for a design that is not a
    config's accelerator (the board self-test with its stored image, say).

    Parameters
    ----------
    name : str
        The module's name (``convert`` must name the top so).
    parts : iterable of str
        Everything the text depends on besides the sources and tools :func:`verilog_key`
        covers: the design's parameters and data, spelled out (:func:`design_key`).
    convert : callable
        Returns the Verilog text; called at most once per key and machine.
    folder : path-like
        Where the file goes (created when missing).
    cache : path-like, optional
        Folder of cached Verilog (default :func:`cache_dir`).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    return _through_cache(design_key(name, parts), convert, Path(folder) / f"{name}.v", cache)


def _through_cache(key, convert, target, cache):
    """The text cached under ``key`` (``convert()`` the first time, under a lock) copied to
    ``target``."""
    cache = Path(cache or cache_dir())
    cached = cache / f"{key}.v"
    cache.mkdir(parents=True, exist_ok=True)
    with file_lock(cache / f"{key}.lock"):
        if not cached.is_file():
            _write_atomic(cached, convert())
    return _copy(cached, target)


def _copy(cached, target):
    text = cached.read_text()
    if not target.is_file() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, text)
    return target


def _write_atomic(path, text):
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    os.replace(temp, path)
