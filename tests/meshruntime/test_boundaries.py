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


def test_both_local_runtimes_implement_the_runtime_interface():
    from harness.adapters.thirdparty.runtime import ThirdPartyMesh
    from meshproxy.runtime import LocalMesh
    from meshruntime.control import ProcessControlled
    from meshruntime.runtime import MeshRuntime

    members = [m for m in vars(MeshRuntime) if not m.startswith("_")]
    for runtime in (LocalMesh, ThirdPartyMesh):
        assert issubclass(runtime, ProcessControlled)
        missing = [m for m in members if m not in ("run_id", "scenario") and not hasattr(runtime, m)]
        assert not missing, f"{runtime.__name__} lacks {missing}"
