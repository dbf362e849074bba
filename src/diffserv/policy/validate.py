"""Whole-policy validation: ipqosconf's ``validconf`` plus the illumos kernel create checks.

On Linux diffserv *is* the kernel side, so what illumos modules would refuse with EINVAL,
ENOENT or ENOSPC when an action, class or filter is created is an error at check time, with
the ipqosconf message kept in the text (docs/policy.md, "diffserv check").

The per-module create rules (tokenmt, tswtclmt, flowacct) live beside each module's
interpretation in ``policy.interpret`` and are reached through its one table; cycles are
found by ``policy.refgraph``, the walk the engine uses too.

Every check is linear in the size of the policy (the action graph is walked without
recursion), so a policy of tens of thousands of actions checks in about a second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from diffserv.policy.diagnostics import Reporter, clip, did_you_mean
from diffserv.policy.interpret import MODULE_RULES
from diffserv.policy.model import CLASSIFIER_ACTION, VIRTUAL_ACTIONS, Location
from diffserv.policy.raw import RawAction, RawFilter
from diffserv.policy.refgraph import find_cycles
from diffserv.policy.schema import MAX_CLASSES, MAX_FILTERS

# Actions of a cycle named in its message before the middle is elided.
MAX_CYCLE_SHOWN = 8

# Selectors that restrict a filter; ip_version, priority and precedence do not.
SELECTORS = (
    "user",
    "projid",
    "if_name",
    "direction",
    "protocol",
    "dsfield",
    "saddr",
    "daddr",
    "sport",
    "dport",
)


def validate(actions: list[RawAction], reporter: Reporter, *, parse_failed: bool) -> None:
    """Report every whole-policy problem. ``parse_failed`` suppresses cascading checks."""
    by_name: dict[str, RawAction] = {}
    for action in actions:
        if action.name is None:
            continue
        if action.name in by_name:
            reporter.error(
                f"duplicate named action {clip(action.name)}: first defined at line "
                f"{by_name[action.name].location.line}",
                action.name_loc,
            )
            continue
        by_name[action.name] = action
    names = set(by_name)
    candidates = _Candidates(names)
    for action in actions:
        if action.name is None or by_name.get(action.name) is not action:
            continue
        check_references(action, names, reporter, candidates)
        if action.module == "ipgpc":
            check_ipgpc(action, reporter)
        elif not action.broken and action.schema is not None:
            check_module(action, reporter)
    # An ipgpc action with another name was already reported as "incorrect name".
    if not any(a.module == "ipgpc" for a in actions):
        reporter.file_error(
            "no ipgpc action defined",
            hint=f"every policy needs an action `{CLASSIFIER_ACTION}` of module ipgpc",
        )
    if parse_failed or any(a.broken for a in actions):
        return
    check_graph(actions, by_name, reporter)


# Names compared for "did you mean" hints on action references, per file: with tens of
# thousands of actions only the first undefined references get a hint.
HINT_BUDGET = 200_000


class _Candidates:
    """The names a "did you mean" hint for an action reference picks from, sorted once and
    only if some reference is undefined; comparisons are counted against HINT_BUDGET."""

    def __init__(self, names: set[str]) -> None:
        self._names = names
        self.budget = HINT_BUDGET

    @functools.cached_property
    def sorted(self) -> list[str]:
        others = sorted(n for n in self._names if n != CLASSIFIER_ACTION)
        return [*others, "continue", "drop"]

    def hint(self, target: str) -> str | None:
        pool = self.sorted
        if len(pool) > self.budget:
            return None
        self.budget -= len(pool)
        return did_you_mean(target, pool)


def _reference_hint(target: str, candidates: _Candidates) -> Callable[[], str | None]:
    def hint() -> str | None:
        if target == "defer":
            return "`defer` is not translated to ipp.defer (only continue and drop are)"
        return candidates.hint(target)

    return hint


def _defined(target: str, names: set[str]) -> bool:
    return target in VIRTUAL_ACTIONS or target in names


def check_references(
    action: RawAction,
    names: set[str],
    reporter: Reporter,
    candidates: _Candidates | None = None,
) -> None:
    aname = clip(action.name or "")
    candidates = candidates or _Candidates(names)
    class_names: dict[str, Location | None] = {}
    for cls in action.classes:
        if cls.name is None:
            continue
        if cls.name in class_names:
            reporter.error(
                f"duplicate named class {clip(cls.name)} in action {aname}", cls.name_loc
            )
            continue
        class_names[cls.name] = cls.name_loc
        if cls.next_action is not None and not _defined(cls.next_action, names):
            reporter.error(
                f"undefined action `{clip(cls.next_action)}` in class {clip(cls.name)}, "
                f"action {aname}",
                cls.next_loc,
                _reference_hint(cls.next_action, candidates),
            )
    schema = action.schema
    permanent = schema.permanent_classes if schema is not None else ()
    filter_names: set[str] = set()
    for flt in action.filters:
        if flt.name is None:
            continue
        if flt.name in filter_names:
            reporter.error(
                f"duplicate named filter {clip(flt.name)} in action {aname}", flt.name_loc
            )
            continue
        filter_names.add(flt.name)
        if (
            flt.class_name is not None
            and flt.class_name not in class_names
            and flt.class_name not in permanent
        ):
            class_name = flt.class_name
            reporter.error(
                f"undefined class `{clip(class_name)}` in filter {clip(flt.name)}, action {aname}",
                flt.class_loc,
                functools.partial(did_you_mean, class_name, [*class_names, *permanent]),
            )
    if schema is None:
        return
    for key, item in action.params.items():
        spec = schema.param(key)
        if spec is None or not spec.is_action or not isinstance(item.value, str):
            continue
        if not _defined(item.value, names):
            reporter.error(
                f"undefined action `{clip(item.value)}` in parameter {key}, action {aname}",
                item.value_loc,
                _reference_hint(item.value, candidates),
            )


def check_graph(
    actions: list[RawAction], by_name: dict[str, RawAction], reporter: Reporter
) -> None:
    """Cycles (depth-first over every reference) and actions nothing refers to."""
    edges: dict[str, list[str]] = {}
    for action in actions:
        assert action.name is not None
        targets = [c.next_action for c in action.classes if c.next_action is not None]
        schema = action.schema
        if schema is not None:
            targets += [
                item.value
                for key, item in action.params.items()
                if isinstance(item.value, str) and (spec := schema.param(key)) and spec.is_action
            ]
        edges[action.name] = [t for t in targets if t in by_name]
    reported: set[str] = set()
    for cycle in find_cycles((a.name for a in actions if a.name is not None), edges):
        target = cycle[0]
        reported.update(cycle)
        reporter.error(
            f"action {clip(target)} involved in cycle: " + _cycle_text(cycle),
            by_name[target].location,
        )
    referenced = {t for src, targets in edges.items() for t in targets if t != src}
    for action in actions:
        assert action.name is not None
        if action.name == CLASSIFIER_ACTION or action.name in referenced:
            continue
        if action.name in reported:
            continue  # only refers to itself: the cycle error says it all
        reporter.error(
            f"action {clip(action.name)} isn't referenced by any other actions",
            action.location,
            hint="refer to it from a class next_action or an *_action_name parameter",
        )


def _cycle_text(cycle: Sequence[str]) -> str:
    """``a -> b -> a``; a long cycle keeps its ends and says how many actions it skips."""
    names = [clip(n) for n in cycle]
    if len(names) <= MAX_CYCLE_SHOWN:
        return " -> ".join(names)
    head, tail = names[: MAX_CYCLE_SHOWN // 2], names[-(MAX_CYCLE_SHOWN // 2) :]
    skipped = len(names) - len(head) - len(tail)
    return " -> ".join([*head, f"… ({skipped} more actions) …", *tail])


# -- kernel create checks -----------------------------------------------------------------


def _missing(action: RawAction, reporter: Reporter) -> bool:
    schema = action.schema
    assert schema is not None
    if any(schema.param(name) is None for name in action.failed_params):
        return False  # an unknown parameter may be a misspelt required one: no cascade
    missing = [
        name
        for name in schema.required_params
        if name not in action.params and name not in action.failed_params
    ]
    if missing:
        reporter.error(
            f"missing required parameter for action {clip(action.name or '')}: "
            + ", ".join(f"`{m}`" for m in missing),
            action.params_loc or action.location,
        )
    return bool(missing)


def check_module(action: RawAction, reporter: Reporter) -> None:
    """The create-time checks of tokenmt, tswtclmt, dscpmk, dlcosmk and flowacct."""
    if _missing(action, reporter):
        return
    rules = MODULE_RULES.get(action.module or "")
    if rules is not None:
        rules.check(action, reporter)


def _is_selector(flt: RawFilter, key: str) -> bool:
    item = flt.selectors.get(key)
    if item is None:
        return False
    if key == "projid" and item.value == -1:
        return False  # -1 is the projid wildcard
    if key == "dsfield":
        mask = flt.selectors.get("dsfield_mask")
        return mask is not None and mask.value != 0
    return True


def check_ipgpc(action: RawAction, reporter: Reporter) -> None:
    classes = {c.name for c in action.classes if c.name is not None}
    class_count = len(classes | {"default"})
    if class_count > MAX_CLASSES:
        reporter.error(
            f"max number of classes reached in ipgpc: {class_count} classes (with `default`), "
            f"limit {MAX_CLASSES}",
            action.classes[-1].location if action.classes else action.location,
        )
    filter_count = 0
    for flt in action.filters:
        filter_count += flt.instances
        if flt.broken:
            continue
        has_ds = "dsfield" in flt.selectors
        has_mask = "dsfield_mask" in flt.selectors
        if has_ds != has_mask:
            key = "dsfield" if has_ds else "dsfield_mask"
            reporter.error(
                f"invalid/missing parameters for filter {clip(flt.name or '')} in action "
                f"{action.name}: dsfield and dsfield_mask must be given together",
                flt.selectors[key].name_loc,
            )
            continue
        if not any(_is_selector(flt, key) for key in SELECTORS):
            reporter.error(
                f"invalid/missing parameters for filter {clip(flt.name or '')} in action "
                f"{action.name}: catch-all filters are not supported (give at least one selector; "
                "ip_version, priority and precedence are not selectors)",
                flt.location,
                hint="unmatched packets already go to class `default`",
            )
    if filter_count > MAX_FILTERS:
        reporter.error(
            f"max number of filters reached in action ipgpc: {filter_count} filters "
            f"(each host-name address counts), limit {MAX_FILTERS}",
            action.filters[-1].location if action.filters else action.location,
        )
