"""The meshconform command (placeholder until the runtime lands)."""


def main() -> int:
    raise SystemExit("meshconform: not built yet")
