"""Prints the pip requirements Home Assistant would install at start for what Porch's test
runs (MQTT, the frontend that onboarding and config flows come with, and the login code's own
modules), read from the installed homeassistant package itself: run inside its venv. Without
the network HA cannot install them itself, and it would not start."""

import ast
import json
import pathlib

import homeassistant

BASE = pathlib.Path(homeassistant.__file__).parent
WANTED = ["mqtt", "frontend", "config"]


def manifest(name: str) -> dict:
    return json.loads((BASE / "components" / name / "manifest.json").read_text())


def integration_requirements(names: list[str]) -> set[str]:
    seen: set[str] = set()
    found: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        data = manifest(name)
        found.update(data.get("requirements", []))
        todo += data.get("dependencies", [])
    return found


def module_requirements(folder: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for module in folder.glob("*.py"):
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "REQUIREMENTS" for t in node.targets
            ):
                found.update(ast.literal_eval(node.value))
    return found


requirements = integration_requirements(WANTED)
requirements |= module_requirements(BASE / "auth" / "mfa_modules")
requirements |= module_requirements(BASE / "auth" / "providers")
print("\n".join(sorted(requirements)))
