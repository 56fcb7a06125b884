"""meshruntime is what every runtime stands on: it imports neither the harness nor the reference mesh."""

import ast
from pathlib import Path

import meshruntime

ROOT = Path(meshruntime.__file__).parent


def test_meshruntime_imports_neither_harness_nor_meshproxy():
    offending = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offending += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("harness", "meshproxy")]
    assert not offending, f"meshruntime imports the packages that stand on it: {offending}"
