# pytest only honours pytest_plugins in the rootdir's conftest; the harness plugin's own tests
# (tests/harness/test_plugin.py) run small suites through pytester.
pytest_plugins = ["pytester"]
