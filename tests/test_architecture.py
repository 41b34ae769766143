"""The house: dependencies flow one way between packages, and no module imports another that imports it back."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["galaxy_common", "proxies", "synthesis", "correlation", "galaxy_synth"]  # each may import only those before it


def _modules() -> dict[str, Path]:
    out = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            out[name] = path
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every module of ours that this file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names += [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in known}
    return found


def test_packages_depend_only_on_the_layers_below():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        layer = LAYERS.index(name.split(".")[0])
        for target in _imports(path, set(modules)):
            if LAYERS.index(target.split(".")[0]) > layer:
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_no_module_imports_one_that_imports_it_back():
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    graph = {k: {t for t in v if not k.startswith(t + ".")} for k, v in graph.items()}  # a package's own face
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def _package_of(module: str, packages: set[str]) -> str:
    return module if module in packages else module.rsplit(".", 1)[0]


def _packages() -> set[str]:
    return {".".join(p.relative_to(ROOT).parts[:-1]) for layer in LAYERS for p in (ROOT / layer).rglob("__init__.py")}


def _reaches_past_front_doors(path: Path, own: str, modules: set[str], packages: set[str]) -> list[str]:
    """Imports in ``path`` of another package's modules, or of names its front door does not list."""
    import importlib

    wrong = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [(node.module, a.name) for a in node.names]
        else:
            continue
        for target, name in targets:
            if target in modules and target not in packages and _package_of(target, packages) != own:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}" + (f".{name}" if name else ""))
            elif target in packages and target != own and name is not None and f"{target}.{name}" not in packages:
                if name not in importlib.import_module(target).__all__:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}.{name}, not in its __all__")
    return wrong


def test_other_packages_are_reached_only_through_their_front_door():
    """A package's modules are its own business: other packages import only what its ``__init__`` names."""
    modules, packages = set(_modules()), _packages()
    wrong = []
    for name, path in _modules().items():
        own = name if path.name == "__init__.py" else _package_of(name, packages)
        wrong += _reaches_past_front_doors(path, own, modules, packages)
    assert not wrong, "\n".join(wrong)


def test_every_package_names_its_public_api():
    import importlib

    unnamed = [p for p in sorted(_packages()) if not getattr(importlib.import_module(p), "__all__", None)]
    assert not unnamed, unnamed
