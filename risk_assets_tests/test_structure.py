"""The layout promises: the check table and the Definitions agree, SQL lives in the
queries package, only public Dagster APIs, and the Dagster layer only wraps bodies."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dagster as dg
import pytest

from risk_assets.checks.catalogue import CHECKS
from risk_assets.defs.factory import build_definitions
from risk_assets.store.warehouse import TABLES
from risk_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "risk_assets"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|FROM|JOIN)\b")
TABLE_NAMES = re.compile(r"\b(" + "|".join(sorted([*TABLES, "alerts"], key=len, reverse=True)) + r")\b")
MAX_CLOSURE_LINES = 15


def modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in under.rglob("*.py"))


def strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal, f-strings joined (their literal parts)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            out.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def test_every_declared_check_is_registered_with_its_blocking_flag_and_partitions():
    with dg.instance_for_test():  # resolving definitions may touch the current instance
        graph = build_definitions(Settings()).resolve_asset_graph()
    registered = {k for k in graph.asset_check_keys if k.name != "freshness_check"}
    declared = {dg.AssetCheckKey(dg.AssetKey(c.asset), c.name): c for c in CHECKS}
    assert registered == set(declared), (registered ^ set(declared))
    for key, decl in declared.items():
        spec = graph.get_check_spec(key)
        assert spec.blocking == decl.blocking, key
        asset_partitions = graph.get(dg.AssetKey(decl.asset)).partitions_def
        assert (asset_partitions is not None) == decl.partitioned, key
        if decl.partitioned:
            assert spec.partitions_def == asset_partitions, key
        assert decl.thresholds(Settings()) is not None  # every settings path resolves


def test_every_declared_threshold_is_a_keyword_of_its_guard():
    import inspect

    for decl in CHECKS:
        params = inspect.signature(decl.guard).parameters
        assert set(decl.settings) <= set(params), (decl.label, set(decl.settings) - set(params))


def test_no_module_imports_dagster_internals():
    offenders = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("dagster._")]
    assert not offenders, offenders


def test_no_sql_string_outside_the_queries_package_names_a_table():
    offenders = []
    for path in modules():
        if path.relative_to(PACKAGE).parts[0] in ("store", "engines", "checks"):
            continue
        for line, text in strings(ast.parse(path.read_text())):
            if SQL.search(text) and TABLE_NAMES.search(text):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:80]!r}")
    assert not offenders, offenders


def test_the_sql_scan_would_see_a_table_named_in_a_query():
    tree = ast.parse('conn.execute(f"SELECT * FROM risk_scores WHERE partition = {x}")')
    assert any(SQL.search(t) and TABLE_NAMES.search(t) for _, t in strings(tree))


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


@pytest.mark.parametrize("path", [p for p in ROOT.rglob("*") if p.is_file() and p.suffix in {".py", ".md", ".toml", ".yaml"}
                                  and ".venv" not in p.parts and ".git" not in p.parts
                                  and p != Path(__file__).resolve()],
                         ids=lambda p: str(p.relative_to(ROOT)))
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
    section = readme[readme.index("### Adding a check"):readme.index("**Measured false alarms**")]
    sources = {"checks/raw.py": PACKAGE / "checks" / "raw.py", "checks/loaders.py": PACKAGE / "checks" / "loaders.py",
               "checks/catalogue.py": PACKAGE / "checks" / "catalogue.py"}
    code = "\n".join(p.read_text() for p in sources.values())
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3
    for block in blocks:
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        for line in lines:
            assert line in {c.strip() for c in code.splitlines()}, line
