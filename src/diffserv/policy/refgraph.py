"""The reference graph of a policy (which action sends packets to which) and its cycles.

Both the checker (on raw actions, reporting every cycle) and the engine (on a built
``Policy``, before it numbers the actions) find cycles here, with one walk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def find_cycles(roots: Iterable[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every cycle met by a depth-first walk from each root in turn, as ``[a, b, ..., a]``.

    A cycle is listed when the walk closes it through an action not yet named in an
    earlier cycle, in the order a recursive walk would find them. The walk uses an
    explicit stack, so a chain of any length is fine; cost is linear in the graph.
    """
    cycles: list[list[str]] = []
    reported: set[str] = set()
    state: dict[str, int] = {}  # 1 = on path, 2 = done
    for root in roots:
        if root in state:
            continue
        path: list[str] = [root]
        on_path: dict[str, int] = {root: 0}  # name -> index in path
        pending: list[int] = [0]  # per path entry: index of the next edge to follow
        state[root] = 1
        while path:
            name = path[-1]
            targets = edges.get(name, ())
            index = pending[-1]
            if index == len(targets):
                path.pop()
                pending.pop()
                del on_path[name]
                state[name] = 2
                continue
            pending[-1] = index + 1
            target = targets[index]
            if state.get(target) == 1:
                if target not in reported:
                    cycle = [*path[on_path[target] :], target]
                    reported.update(cycle)
                    cycles.append(cycle)
            elif target not in state:
                state[target] = 1
                on_path[target] = len(path)
                path.append(target)
                pending.append(0)
    return cycles
