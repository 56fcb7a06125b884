"""A self-contained HTML page of a run: summary table coloured by outcome, details and inline plots, and
for a check that ran under Locust load (evidence ``background_load``) the load's table in its entry."""

from __future__ import annotations

from harness.report.model import RunResult, display_name, summarize


def render_html(run: RunResult) -> str:
    import jinja2

    from harness.report.plots import plot_data_uri

    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True)
    tests = []
    for r in run.results:
        evidence = {k: v for k, v in r.evidence.items() if k != "plots"}
        plots = [{"title": p["title"], "uri": plot_data_uri(p)} for p in r.evidence.get("plots", [])]
        tests.append({"name": display_name(r), "result": r, "evidence": evidence, "plots": plots,
                      "background_load": r.evidence.get("background_load")})  # harness/locust/background.py
    return env.get_template("report.html.j2").render(
        run=run, profiles=summarize(run), tests=tests, date=run.date.strftime("%Y-%m-%d %H:%M:%S UTC"))
