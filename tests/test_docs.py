"""The documentation stays true to the tree: generated pages are current, and every file,
folder and module the README and the docs name exists."""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS]


def _results_doc():
    # benchmarks/ is a folder of scripts, not a package.
    spec = importlib.util.spec_from_file_location(
        "results_doc", REPO / "benchmarks" / "results_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results_doc():
    return _results_doc()


@pytest.mark.parametrize("name", ["docs/results.md", "docs/layout.md", "README.md"])
def test_generated_pages_are_current(results_doc, name):
    expected = results_doc.outputs()[REPO / name]
    assert (REPO / name).read_text(encoding="utf-8") == expected, (
        f"{name} is out of date: run .venv/bin/python benchmarks/results_doc.py")


def test_every_result_file_has_a_section(results_doc):
    shown = {stem for section in results_doc.SECTIONS for stem in section.files}
    assert shown == {p.stem for p in (REPO / "benchmarks" / "results").glob("*.md")}


def test_a_result_file_without_a_section_is_refused(results_doc, tmp_path):
    for section in results_doc.SECTIONS:
        for stem in section.files:
            (tmp_path / f"{stem}.md").write_text("| a |\n", encoding="utf-8")
    (tmp_path / "new_study.md").write_text("| a |\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"not \['new_study'\]$"):
        results_doc.results_markdown(tmp_path)


def test_readme_without_layout_markers_is_refused(results_doc):
    with pytest.raises(ValueError, match="README.md needs the markers"):
        results_doc.readme_with_layout("# Chrysalis\n")


def test_readme_is_a_product_page_not_a_log():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 350


def test_license_is_bsd_2_clause():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("Copyright (c) 2026 Chrysalis contributors\n")
    assert "Redistributions in binary form must reproduce" in text


# A path in the repository as the docs write it: from a top-level folder, not inside a URL
# or a longer path (`build/...` and other outputs are not checked).
PATH = re.compile(r"(?<![\w./-])((?:hw|gen|sim|docs|benchmarks|tests|sweeps)/[\w./{},*<>-]*)")


def _paths(text):
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".,:;")
        path = re.sub(r":\d+$", "", path)          # hw/loss.py:146
        if "<" in path or "*" in path:              # gen/spec/presets/<name>.toml, *.md
            continue
        braces = re.search(r"\{([^}]*)\}", path)    # benchmarks/results/arith.{json,md}
        if braces:
            for choice in braces.group(1).split(","):
                yield path[:braces.start()] + choice + path[braces.end():]
        else:
            yield path


def _named_paths():
    for page in PAGES:
        for path in _paths(page.read_text(encoding="utf-8")):
            yield page.relative_to(REPO).as_posix(), path


def test_every_path_the_docs_name_exists():
    missing = sorted({(page, path) for page, path in _named_paths()
                      if not (REPO / path).exists()})
    assert not missing, f"paths named in the docs that do not exist: {missing}"


def test_the_path_finder_reads_the_docs_forms():
    text = ("see `hw/loss.py:146`, `benchmarks/results/arith.{json,md}`, hw/pe.py. and "
            "https://github.com/amaranth-lang/amaranth-boards, `gen/spec/presets/<name>.toml`")
    assert list(_paths(text)) == ["hw/loss.py", "benchmarks/results/arith.json",
                                  "benchmarks/results/arith.md", "hw/pe.py"]


# A module or one of its names as the docs write it, without the `chrysalis.` prefix:
# `sim.golden.ring.cycles`, `gen.perf.evaluate`, `hw.dual.DualMultiplyPath`.
DOTTED = re.compile(r"(?<![\w./-])(?:chrysalis\.)?((?:hw|gen|sim)(?:\.\w+)+)")


def _resolves(dotted):
    """Whether ``chrysalis.<dotted>`` is a module, or a name inside one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = "chrysalis." + ".".join(parts[:cut])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and name.startswith(error.name):
                continue
            raise
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_module_the_docs_name_exists():
    unknown = set()
    for page in PAGES:
        for match in DOTTED.finditer(page.read_text(encoding="utf-8")):
            dotted = match.group(1).rstrip(".")
            if dotted.endswith((".py", ".md", ".toml", ".json")):
                continue
            if not _resolves(dotted):
                unknown.add((page.relative_to(REPO).as_posix(), dotted))
    assert not unknown, f"modules and names in the docs that do not exist: {sorted(unknown)}"


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page):
    """The anchors GitHub gives the headings of ``page``."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):                # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append((page.name, target))
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append((page.name, target))
    assert not broken, f"links that lead nowhere: {broken}"
