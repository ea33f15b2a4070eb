"""The one-way flow of the package, read from the imports themselves (../shared/GUIDE.md, section 1).

    leaves (errors, schema, seeding, settings, io, machine, devices, distributed, interrupt) <- data <- tokens <- pipeline
    leaves <- model <- trained <- evaluation <- baselines;  everything <- training (finetune included),
    interop <- experiments, api <- cli <- __main__;  trained <- streaming (its benchmark with evaluation) <- api

Each layer may import only the layers listed for it below; an import that runs against the flow
fails this test with the file, the line and the layer it reached.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "neuropoyo"
LEAVES = {"__init__", "errors", "schema", "seeding", "settings", "io", "machine", "devices", "distributed", "interrupt"}
LIBRARY = {"data", "tokens", "pipeline", "model", "trained", "evaluation", "baselines", "training", "interop", "streaming"}
BELOW = {
    "leaf": set(),
    "data": set(),
    "tokens": {"data"},
    "pipeline": {"data", "tokens"},
    "model": set(),
    "trained": {"data", "tokens", "model"},
    "evaluation": {"data", "tokens", "pipeline", "model", "trained"},
    "baselines": {"data", "evaluation"},
    "training": {"data", "tokens", "pipeline", "model", "trained", "evaluation"},
    "interop": {"data", "tokens", "model", "trained", "evaluation", "pipeline", "training"},
    "streaming": {"data", "tokens", "pipeline", "model", "trained", "evaluation"},
    "experiments": LIBRARY - {"interop", "streaming"},
    "api": LIBRARY | {"experiments"},
    "cli": LIBRARY | {"experiments", "api"},
    "__main__": {"cli"},
}


def layer(parts: tuple[str, ...]) -> str:
    """The layer of a module given by its path parts below the package (e.g. ("data", "store"));
    a name that is no module (``from neuropoyo import __version__``) belongs to the package root."""
    top = parts[0]
    is_module = (PACKAGE / top).is_dir() or (PACKAGE / f"{top}.py").is_file()
    return "leaf" if top in LEAVES or not is_module else top


def imports(path: Path):
    """(line, layer) of every neuropoyo module that ``path`` imports."""
    here = path.relative_to(PACKAGE.parent).with_suffix("").parts
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level] if node.level else ()
            module = ".".join([*base, node.module or ""]).strip(".")
            names = [f"{module}.{alias.name}" for alias in node.names] if module == "neuropoyo" else [module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "neuropoyo" and len(parts) > 1:
                yield node.lineno, layer(tuple(parts[1:]))


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_layer():
    assert {layer(p.relative_to(PACKAGE).with_suffix("").parts) for p in modules()} <= set(BELOW)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_one_way_flow(path):
    mine = layer(path.relative_to(PACKAGE).with_suffix("").parts)
    allowed = BELOW[mine] | {mine, "leaf"}
    wrong = [f"line {line}: {mine} imports {target}" for line, target in imports(path) if target not in allowed]
    assert not wrong, f"{path.relative_to(PACKAGE.parent)}: " + "; ".join(wrong)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a data module importing the model is reported."""
    fake = tmp_path / "neuropoyo" / "data" / "bad.py"
    fake.parent.mkdir(parents=True)
    (tmp_path / "neuropoyo" / "model").mkdir()
    fake.write_text("from neuropoyo.model.poyo import POYO\nfrom . import recording\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "neuropoyo")
    assert list(imports(fake)) == [(1, "model"), (2, "data")]
