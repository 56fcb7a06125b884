"""Report writers: pure functions from the result model (``model``) to text; they run nothing.

``yaml_report`` (the conformance report), ``html_report`` (a self-contained page with plots),
``smp`` (performance results in the Service Mesh Performance shape). JUnit XML comes from pytest's own
junitxml, which the plugin points at the report directory. ``formats`` registers the writers (a new
format: one module and one line there); ``writer`` is the only part that touches the filesystem.
"""
