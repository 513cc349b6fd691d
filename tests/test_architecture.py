"""The shape docs/architecture.md promises: parts that import only downwards, no circles, settings defined once."""

from __future__ import annotations

import ast
from pathlib import Path

from label_studio_cortx import conf

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "label_studio_cortx"

# What each part may import of the plugin (besides itself). The Django layer (top-level modules) may import all.
ALLOWED = {
    "conf": {"connection.config"},
    "rows": set(),
    "connection": {"conf"},
    "source": {"conf", "connection", "rows"},
    "target": {"conf", "connection", "rows", "pull.manifest", "__init__"},
    "pull": {"connection.config", "connection.ca_bundle"},
    "devservers": {"connection.config"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] or ["__init__"]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int | None]]:
    """(plugin module imported, None at module level else the import's line) for every import of the plugin."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                prefix = ".".join([p for p in base if p != "__init__"] + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("label_studio_cortx"):
                prefix = node.module.removeprefix("label_studio_cortx").lstrip(".")
            else:
                continue
            for alias in node.names:
                candidate = f"{prefix}.{alias.name}" if prefix else alias.name
                names.append(candidate if _exists(candidate) else (prefix or "__init__"))
        elif isinstance(node, ast.Import):
            names = [
                a.name.removeprefix("label_studio_cortx").lstrip(".") or "__init__"
                for a in node.names
                if a.name.startswith("label_studio_cortx")
            ]
        found.extend((name, None if id(node) in top_level else node.lineno) for name in names)
    return found


def _exists(module: str) -> bool:
    base = PACKAGE.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts or "templates" in path.parts:
            continue
        graph[_module_name(path)] = {name for name, _ in _imports(path)}
    return graph


def _part(module: str) -> str:
    return module.split(".")[0] if "." in module or module in ALLOWED else "django-layer"


def test_parts_import_only_what_their_docstrings_allow():
    wrong = []
    for module, imported in _graph().items():
        part = _part(module)
        if part not in ALLOWED:
            continue
        for name in imported:
            if _part(name) == part or name == module:
                continue
            if not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED[part]):
                wrong.append(f"{module} imports {name}")
    assert wrong == []


def test_no_import_circles():
    graph = _graph()
    # Importing a package runs its __init__: an edge to each package a module imports through.
    circles = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in path:
                circles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in done:
                visit(target, path + [target])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert circles == []


def test_plugin_imports_are_at_module_top_unless_a_comment_says_why():
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        lines = path.read_text().splitlines()
        for name, line in _imports(path):
            if line is not None and not any("#" in text for text in lines[max(0, line - 4) : line]):
                unexplained.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert unexplained == []


def test_every_setting_is_in_the_table_once_and_documented():
    names = [setting.name for setting in conf.TABLE]
    assert len(names) == len(set(names))
    readme = (ROOT / "README.md").read_text()
    assert [name for name in names if f"`{name}`" not in readme] == []
    # No default repeated outside the table: settings.py fills every value from it.
    settings_source = (PACKAGE / "settings.py").read_text()
    assert [name for name in names if f"{name} =" in settings_source] == []


def test_settings_come_from_the_environment():
    values = conf.from_env(
        {"CORTX_MAX_POOL_CONNECTIONS": "7", "CORTX_ALLOW_INSECURE_TLS": "false", "CORTX_TRUSTED_ENDPOINTS": "a, b"}
    )
    assert values["CORTX_MAX_POOL_CONNECTIONS"] == 7
    assert values["CORTX_ALLOW_INSECURE_TLS"] is False
    assert values["CORTX_TRUSTED_ENDPOINTS"] == ["a", "b"]
    assert values["CORTX_CLIENT_CACHE_SIZE"] == 64
