"""The suite is honest about where it runs: every test that uses a POSIX-only facility
(signals to process groups, SIGKILL, owner-only file modes, euid, fork, mounts) is marked
``posix``, so that on Windows it is skipped with a reason instead of failing or, worse,
passing by accident. Checked here, on any system, by reading the tests' source."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# Attribute uses that exist or behave only on POSIX systems.
POSIX_ATTRIBUTES = {
    ("os", "killpg"),
    ("os", "getpgid"),
    ("os", "setsid"),
    ("os", "geteuid"),
    ("os", "getuid"),
    ("os", "fork"),
    ("os", "O_NOFOLLOW"),
    ("os", "mkfifo"),
    ("signal", "SIGKILL"),
    ("signal", "SIGTERM"),
    ("signal", "SIGINT"),
    ("signal", "SIGSTOP"),
    ("signal", "SIGCONT"),
    ("stat", "S_IMODE"),
}
POSIX_NAMES = {"S_IMODE", "SIGKILL", "killpg", "fcntl", "resource"}


def _uses_posix(node: ast.AST) -> bool:
    for child in ast.walk(node):
        if (
            isinstance(child, ast.Attribute)
            and isinstance(child.value, ast.Name)
            and (child.value.id, child.attr) in POSIX_ATTRIBUTES
        ):
            return True
        if isinstance(child, ast.Name) and child.id in POSIX_NAMES:
            return True
    return False


def _called_names(node: ast.AST) -> set[str]:
    return {
        child.func.id
        for child in ast.walk(node)
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Name)
    }


def _marked_posix(decorators: list[ast.expr]) -> bool:
    for decorator in decorators:
        text = ast.unparse(decorator)
        if "mark.posix" in text:
            return True
        if "skipif" in text and ("os.name" in text or "sys.platform" in text):
            return True
    return False


def _module_marked(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return "mark.posix" in ast.unparse(node.value)
    return False


def unmarked_posix_tests(source: str) -> list[str]:
    """Names of the tests in ``source`` that use POSIX-only facilities, directly, through a
    function of the module or a fixture of it, and are not marked."""
    tree = ast.parse(source)
    if _module_marked(tree):
        return []
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    posix = {name for name, node in functions.items() if _uses_posix(node)}
    changed = True
    while changed:  # a function that calls or takes a POSIX function is one too
        changed = False
        for name, node in functions.items():
            if name in posix:
                continue
            used = _called_names(node) | {a.arg for a in node.args.args}
            if used & posix:
                posix.add(name)
                changed = True
    classes_marked = {
        item.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and _marked_posix(node.decorator_list)
        for item in node.body
        if isinstance(item, ast.FunctionDef)
    }
    return sorted(
        name
        for name in posix
        if name.startswith("test_")
        and not _marked_posix(functions[name].decorator_list)
        and name not in classes_marked
    )


def test_every_test_using_posix_facilities_is_marked_posix() -> None:
    unmarked = {
        path.name: names
        for path in sorted(TESTS.glob("test_*.py"))
        if (names := unmarked_posix_tests(path.read_text(encoding="utf-8")))
    }
    assert unmarked == {}


def test_the_checker_finds_direct_indirect_and_fixture_uses() -> None:
    source = """
import os, signal, stat, pytest

def kill(process):
    os.killpg(process.pid, signal.SIGKILL)

@pytest.fixture
def private_file(tmp_path):
    return stat.S_IMODE(tmp_path.stat().st_mode)

def test_direct():
    assert stat.S_IMODE(0o600) == 0o600

def test_through_a_helper():
    kill(None)

def test_through_a_fixture(private_file):
    assert private_file

@pytest.mark.posix
def test_marked():
    kill(None)

@pytest.mark.skipif(os.name == "nt", reason="x")
def test_skipped_on_windows():
    kill(None)

def test_portable(tmp_path):
    assert tmp_path
"""
    assert unmarked_posix_tests(source) == [
        "test_direct",
        "test_through_a_fixture",
        "test_through_a_helper",
    ]
    assert unmarked_posix_tests("import pytest\npytestmark = [pytest.mark.posix]\n" + source) == []
