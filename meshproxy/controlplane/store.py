"""Durable state of the control plane: the scenario (with its version) and the generation counter.

Both are written atomically (temp file, fsync, rename, fsync of the directory) so a crash leaves the
old or the new content, never a torn file. ``scenario.json`` holds ``{"version", "scenario"}``;
``generation.json`` holds the last generation handed out, so generations keep growing across restarts
(a sidecar that saw generation 7 before a restart must see a larger one after it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshscenario import Scenario, ScenarioError, dump_scenario, parse_scenario
from meshproxy.files import write_file_atomically


def write_json_atomically(path: Path, value: Any) -> None:
    write_file_atomically(path, json.dumps(value, indent=1, sort_keys=True).encode(), 0o600)


class ScenarioStore:
    """The current scenario and its version (0 = none yet); ``put`` validates, stores, bumps version."""

    def __init__(self, state_dir: Path, trust_domain: str):
        self.path = Path(state_dir) / "scenario.json"
        self.trust_domain = trust_domain
        self.version = 0
        self.scenario: Scenario | None = None
        if self.path.exists():
            stored = json.loads(self.path.read_text())
            # A stored scenario that no longer validates is a real problem: fail loudly at start.
            self.scenario = parse_scenario(stored["scenario"], str(self.path))
            self.version = int(stored["version"])

    def put(self, data: Any) -> int:
        """Validate and durably store; raises ScenarioError (its ``errors`` name the fields)."""
        scenario = parse_scenario(data)
        if scenario.trust_domain != self.trust_domain:
            raise ScenarioError([{"field": "trust_domain",
                                  "message": f"the control plane's trust domain is {self.trust_domain!r}"}])
        version = self.version + 1
        write_json_atomically(self.path, {"version": version, "scenario": dump_scenario(scenario)})
        self.scenario, self.version = scenario, version
        return version

    def dumped(self) -> dict | None:
        return dump_scenario(self.scenario) if self.scenario is not None else None


class GenerationCounter:
    """A counter of every change (scenario or endpoints) that only grows, across restarts too."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "generation.json"
        last = json.loads(self.path.read_text())["generation"] if self.path.exists() else 0
        # Start one past the last life's value: everything in memory (endpoints, acks) is new.
        self.value = int(last) + 1
        write_json_atomically(self.path, {"generation": self.value})

    def bump(self) -> int:
        self.value += 1
        write_json_atomically(self.path, {"generation": self.value})
        return self.value
