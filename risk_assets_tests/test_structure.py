"""The layout promises: the check table and the Definitions agree; SQL that names a table
lives in the store, the engines and the check families; no import circle; a small package
root; one engine switch; only public Dagster APIs; and the Dagster layer only wraps bodies."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from risk_assets.checks.catalogue import CHECKS
from risk_assets.defs.factory import build_definitions
from risk_assets.settings import Settings
from risk_assets.store.warehouse import TABLES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "risk_assets"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|FROM|JOIN)\b")
TABLE_NAMES = re.compile(r"\b(" + "|".join(sorted([*TABLES, "alerts"], key=len, reverse=True)) + r")\b")
SQL_ROOMS = ("store", "engines", "checks")  # where SQL that names a table may live
MAX_CLOSURE_LINES = 15
MAX_ROOT_MODULES = 4
ENGINE_TEST = re.compile(r"engine\w*\.(kind|name)\b|\.kind\b.*['\"](spark|duckdb)['\"]")
"""A comparison that asks which engine is configured (its source text)."""


def modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in under.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal; an f-string read whole — its literal parts and the source of
    every ``{…}`` in it, so ``{warehouse.table("risk_scores")}`` names its table."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):  # "SELECT … " + name, "%s"
            out.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            out.append((node.lineno, ast.unparse(node)))  # "SELECT … FROM {}".format(…)
    return out


def table_sql(source: str) -> list[tuple[int, str]]:
    return [(line, text) for line, text in strings(ast.parse(source)) if SQL.search(text) and TABLE_NAMES.search(text)]


def imports(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports, at module level or inside a function alike.
    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative (ruff bans them; read them anyway)
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in known else base)
    return {m for m in out if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = modules()
    known = {module_name(p) for p in paths}
    return {module_name(p): imports(p, known) for p in paths}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_declared_check_is_registered_with_its_blocking_flag_and_partitions():
    with dg.instance_for_test():  # resolving definitions may touch the current instance
        graph = build_definitions(Settings()).resolve_asset_graph()
    registered = {k for k in graph.asset_check_keys if k.name != "freshness_check"}
    declared = {dg.AssetCheckKey(dg.AssetKey(c.asset), c.name): c for c in CHECKS}
    assert registered == set(declared), registered ^ set(declared)
    for key, decl in declared.items():
        spec = graph.get_check_spec(key)
        assert spec.blocking == decl.blocking, key
        asset_partitions = graph.get(dg.AssetKey(decl.asset)).partitions_def
        assert (asset_partitions is not None) == decl.partitioned, key
        if decl.partitioned:
            assert spec.partitions_def == asset_partitions, key
        assert decl.thresholds(Settings()) is not None  # every settings path resolves


def test_every_declared_threshold_is_a_keyword_of_its_guard():
    for decl in CHECKS:
        params = inspect.signature(decl.guard).parameters
        assert set(decl.settings) <= set(params), (decl.label, set(decl.settings) - set(params))


INTERNALS_ALLOWED = {
    "risk_assets/app/launch.py": "a run created with its code-location origin and launched without the daemon "
    "(what `dagster job launch` does in dagster/_cli/job.py): Dagster has no public API for it"
}
"""The one module allowed Dagster internals, and why; every other module uses the public API."""


def test_no_module_imports_dagster_internals():
    offenders = []
    for path in modules():
        if str(path.relative_to(ROOT)) in INTERNALS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("dagster._")]
    assert not offenders, offenders


def test_no_sql_outside_the_store_the_engines_and_the_checks_names_a_table():
    offenders = []
    for path in modules():
        if path.relative_to(PACKAGE).parts[0] in SQL_ROOMS:
            continue
        offenders += [f"{path.relative_to(ROOT)}:{line}: {text[:80]!r}" for line, text in table_sql(path.read_text())]
    assert not offenders, offenders


def test_the_sql_scan_sees_a_table_named_in_a_query_literally_or_through_the_store():
    assert table_sql('conn.execute(f"SELECT * FROM risk_scores WHERE partition = {x}")')
    assert table_sql("conn.execute(f\"SELECT * FROM {warehouse.table('risk_scores')} WHERE partition = $day\")")
    assert table_sql("conn.execute(f\"DELETE FROM {table('raw_transactions')} WHERE partition = ?\")")
    assert table_sql('conn.execute("SELECT count(*) FROM " + "risk_scores")')
    assert table_sql('conn.execute("DELETE FROM {} WHERE x".format("encoded_features"))')
    assert not table_sql('log.info(f"SELECT a model from {registry}")')


def test_no_import_circle_even_behind_a_function_level_import():
    graph = import_graph()
    assert graph["risk_assets.defs.factory"], "the graph sees imports"
    assert not circles(graph), circles(graph)


def test_the_circle_test_sees_a_circle_hidden_in_a_function():
    graph = import_graph()
    graph["risk_assets.core.night"] = graph["risk_assets.core.night"] | {
        "risk_assets.app.cli"
    }  # as if night imported cli
    assert circles(graph), "a function-level import of the CLI by the core would close a circle"
    tree = ast.parse("def f():\n    from risk_assets.app import cli\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))  # ast.walk reaches into functions


def test_the_pure_core_the_checks_the_engines_and_the_store_never_import_dagster_or_the_app():
    for path in modules():
        room = path.relative_to(PACKAGE).parts[0]
        if room not in ("core", "checks", "engines", "store", "sources"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                assert not n.startswith(("dagster", "risk_assets.defs", "risk_assets.app")), (path, n)
                if room in ("core", "checks", "store", "sources", "engines"):
                    assert not n.startswith("risk_assets.scenario"), (path, n)
                if room == "core":
                    assert not n.startswith(("risk_assets.engines", "risk_assets.store", "duckdb", "pyspark")), (
                        path,
                        n,
                    )


def test_production_settings_know_nothing_of_the_synthetic_worlds():
    tree = ast.parse((PACKAGE / "settings.py").read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.startswith("risk_assets.scenario")], imported


def test_the_engine_switch_test_sees_the_usual_disguises():
    def flagged(source: str) -> bool:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Compare | ast.Match):
                tested = ast.unparse(node.subject if isinstance(node, ast.Match) else node)
                if ENGINE_TEST.search(tested):
                    return True
        return False

    assert flagged('if settings.engine.kind == "spark": pass')
    assert flagged('cfg = settings.engine\nif cfg.kind == "spark": pass')
    assert flagged("match settings.engine.kind:\n    case 'spark': pass")
    assert not flagged('if settings.source.kind == "embedded": pass')


def test_the_package_root_keeps_only_what_a_user_imports():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root
    assert {"settings.py", "definitions.py"} <= set(root)


def test_no_context_variable_and_one_engine_switch():
    """The engine is a resource chosen once (``engines.engine_factory``): no ``ContextVar``
    carries it, and no other module tests which engine is configured."""
    for path in modules():
        text = path.read_text()
        assert "ContextVar" not in text and "contextvars" not in text, path
        where = f"{path.relative_to(ROOT)}"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Compare | ast.Match):  # a test of the configured engine: the factory's alone
                tested = ast.unparse(node.subject if isinstance(node, ast.Match) else node)
                if ENGINE_TEST.search(tested):
                    assert path == PACKAGE / "engines" / "__init__.py", f"{where}:{node.lineno}: {tested}"
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "isinstance"
                and len(node.args) == 2
                and "Engine" in ast.unparse(node.args[1])  # branching on the engine's class
            ):
                assert path.relative_to(PACKAGE).parts[0] == "engines", f"{where}:{node.lineno}"


def test_tests_mirror_the_package():
    tests = ROOT / "risk_assets_tests"
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= rooms, folders - rooms
    assert rooms - folders <= {"store"}, rooms - folders  # the store is tested through every room above it


def test_the_dagster_layer_only_wraps_bodies():
    """Functions nested inside the factories (the decorated asset/check/sensor functions)
    stay short: the work is in module-level bodies that tests call directly."""
    long = []
    for path in modules(PACKAGE / "defs"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for inner in ast.walk(node):
                    if inner is not node and isinstance(inner, ast.FunctionDef):
                        lines = inner.end_lineno - inner.body[0].lineno + 1
                        if lines > MAX_CLOSURE_LINES:
                            long.append(f"{path.name}:{inner.name} ({lines} lines)")
    assert not long, long


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in ROOT.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".md", ".toml", ".yaml"}
        and ".venv" not in p.parts
        and ".git" not in p.parts
        and p != Path(__file__).resolve()
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_nothing_cites_notes_that_are_not_in_the_repository(path):
    assert "DESIGN.md" not in path.read_text(errors="replace")


def test_the_docs_the_code_cites_exist():
    cited = set()
    for path in modules():
        cited |= set(re.findall(r"docs/[\w\-/]+\.md", path.read_text()))
    assert cited, "the code cites its design notes in docs/"
    missing = [c for c in cited if not (ROOT / c).is_file()]
    assert not missing, missing


def test_the_readme_example_of_adding_a_check_is_the_code():
    """The worked example in the README is copied from the code; it must stay true."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Adding a check") : readme.index("**Measured false alarms**")]
    sources = {
        "checks/rejections.py": PACKAGE / "checks" / "rejections.py",
        "checks/catalogue.py": PACKAGE / "checks" / "catalogue.py",
    }
    assert all(f"risk_assets/{name}" in section for name in sources)
    code = "\n".join(p.read_text() for p in sources.values())
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4
    for block in blocks:
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        for line in lines:
            assert line in {c.strip() for c in code.splitlines()}, line


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_the_code_is_formatted_and_linted(command):
    """The formatter and linter configured in pyproject.toml (CI runs them first, too)."""
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run([str(ruff), *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
