"""The two locks: what the services need to run (`requirements-runtime.lock`, the only one
the Docker image installs) and that plus the test and measuring tools
(`requirements.lock`, what `make` installs). They must name the same versions, and no
service may import what only the tests have, or the image would fail where the tests pass."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    return {
        name.lower().replace("_", "-"): version
        for name, version in PIN.findall((REPO / lock).read_text())
    }


def test_the_runtime_lock_names_the_versions_the_tests_run_with():
    runtime, everything = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert {"nameko", "sqlalchemy", "kombu", "eventlet"} <= set(runtime)
    assert {name: everything.get(name) for name in runtime} == runtime


def test_the_image_installs_the_runtime_lock_only():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "pip install -r requirements-runtime.lock" in dockerfile
    assert "requirements.lock" not in dockerfile


def test_no_service_imports_a_test_or_measuring_tool():
    tools_only = set(pins("requirements.lock")) - set(pins("requirements-runtime.lock"))
    # The names these distributions are imported by.
    modules = {name.replace("-", "_") for name in tools_only} | {"_pytest", "pytest"}
    sources = [*(REPO / "services").rglob("*.py"), *(REPO / "contracts" / "src").rglob("*.py")]
    found = []
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            found += [
                f"{source.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in modules
            ]
    assert len(sources) > 50 and found == []
