"""Every fuzz target of the project, by name (the parsers a user can feed)."""

from __future__ import annotations

from harness import FuzzTarget


def all_targets() -> dict[str, FuzzTarget]:
    import targets_capture
    import targets_dscp
    import targets_flows
    import targets_live
    import targets_policy
    import targets_report
    import targets_wire

    found: dict[str, FuzzTarget] = {}
    for module in (
        targets_policy,
        targets_capture,
        targets_flows,
        targets_dscp,
        targets_wire,
        targets_report,
        targets_live,
    ):
        for target in module.TARGETS:
            found[target.name] = target
    return found
