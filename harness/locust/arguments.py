"""meshconform's custom Locust options, and the traffic plan they carry (Locust side only).

Registered on ``events.init_command_line_parser`` when a locustfile imports this module, before Locust
parses its command line. Locust sends custom options to every worker with each spawn message, so a
worker — one on another host included — knows the plan without being told on its own command line.
"""

from __future__ import annotations

from locust import events

from harness.locust.plan import TrafficPlan


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    group = parser.add_argument_group("meshconform", "set by `meshconform load`")
    group.add_argument("--mc-plan", default="", help="the traffic plan (JSON, harness/locust/plan.py)")
    group.add_argument("--mc-status", default="", help="progress file the master rewrites while it runs")
    group.add_argument("--mc-result", default="", help="where the master writes the merged histogram")
    group.add_argument("--mc-stop", default="",
                       help="quit as at the end of --run-time once this file exists (a check's background load)")


def plan(environment) -> TrafficPlan:
    """The run's plan; a clear error when Locust was started without one."""
    text = getattr(environment.parsed_options, "mc_plan", "") if environment.parsed_options else ""
    if not text:
        raise RuntimeError("no --mc-plan: run this locustfile through `meshconform load`")
    return TrafficPlan.from_json(text)


def option(environment, name: str) -> str:
    return str(getattr(environment.parsed_options, name, "") or "") if environment.parsed_options else ""
