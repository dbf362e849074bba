"""Options data the decoder remembers per exporter and domain: sampling, init time, names.

Options records are few (an exporter sends them once a minute or so), so they are read
record by record in Python as they arrive; what they say is an immutable
:class:`OptionsContext` that data records queued after it keep a reference to, so a
flush decodes each record with what was known when it arrived.
"""

from __future__ import annotations

from typing import Final

import msgspec
import numpy as np

from diffserv.flows.schema import UNKNOWN
from diffserv.flows.wire.columns import (
    K_ACTION_ID,
    K_ACTION_NAME,
    K_CLASS_ID,
    K_CLASS_NAME,
    K_INIT_MS,
    K_PACKET_INTERVAL,
    K_PACKET_SPACE,
    K_SAMPLER_ID,
    K_SAMPLER_RANDOM,
    K_SAMPLING_INTERVAL,
    K_SELECTOR_ID,
    Key,
    sampling_rate,
)
from diffserv.flows.wire.elements import STRING, element
from diffserv.flows.wire.templates import SCOPE_V9, Template, walk

# Bounds on what options records can make the decoder remember (per exporter and domain).
MAX_NAMES: Final = 4096
MAX_NAME_CHARS: Final = 256
MAX_SELECTORS: Final = 4096

_RATE_KEYS: Final = (K_SAMPLING_INTERVAL, K_SAMPLER_RANDOM, K_PACKET_INTERVAL, K_PACKET_SPACE)


class OptionsContext(msgspec.Struct, frozen=True):
    """What one exporter's options records said so far, for one protocol and domain.

    ``sampling`` is the rate of records whose selector (samplerId / selectorId) is not
    in ``by_selector``, -1 unknown; ``by_selector`` maps (element id, selector) to a rate;
    ``init_ms`` is systemInitTimeMilliseconds (-1 unknown); ``actions`` / ``classes``
    map diffserv's action and class ids to their names.
    """

    sampling: int = UNKNOWN
    by_selector: dict[tuple[int, int], int] = msgspec.field(default_factory=dict)
    init_ms: int = UNKNOWN
    actions: dict[int, str] = msgspec.field(default_factory=dict)
    classes: dict[int, str] = msgspec.field(default_factory=dict)


def _read(data: bytes, start: int, length: int, string: bool) -> int | str:
    raw = data[start : start + length]
    if string:
        return raw.decode("utf-8", "replace").rstrip("\x00")[:MAX_NAME_CHARS]
    return int.from_bytes(raw[-8:], "big")  # longer than 8 bytes: the low 64 bits


def _rate(values: dict[Key, int | str]) -> int | None:
    interval, random, packets, space = (
        np.array([v], np.uint64) if isinstance(v := values.get(k), int) else None
        for k in _RATE_KEYS
    )
    rate = sampling_rate(interval, random, packets, space, 1)
    return None if rate is None else int(rate[0])


def _learn(ctx: OptionsContext, values: dict[Key, int | str]) -> OptionsContext:
    """``ctx`` updated with one options record (the same object if nothing changed)."""
    changes: dict[str, object] = {}
    rate = _rate(values)
    if rate is not None:
        selector = None
        for k in (K_SAMPLER_ID, K_SELECTOR_ID):
            found = values.get(k)
            if isinstance(found, int):
                selector = (k[1], found)
                break
        if selector is None:
            if rate != ctx.sampling:
                changes["sampling"] = rate
        elif ctx.by_selector.get(selector) != rate and (
            selector in ctx.by_selector or len(ctx.by_selector) < MAX_SELECTORS
        ):
            changes["by_selector"] = {**ctx.by_selector, selector: rate}
    init = values.get(K_INIT_MS)
    if isinstance(init, int) and init != ctx.init_ms and init < 2**62:
        changes["init_ms"] = init
    for id_key, name_key, attr in (
        (K_ACTION_ID, K_ACTION_NAME, "actions"),
        (K_CLASS_ID, K_CLASS_NAME, "classes"),
    ):
        ident, name = values.get(id_key), values.get(name_key)
        names: dict[int, str] = getattr(ctx, attr)
        if (
            isinstance(ident, int)
            and isinstance(name, str)
            and names.get(ident) != name
            and (ident in names or len(names) < MAX_NAMES)
        ):
            changes[attr] = {**names, ident: name}
    return msgspec.structs.replace(ctx, **changes) if changes else ctx


def read_options(
    ctx: OptionsContext, data: bytes, start: int, end: int, template: Template
) -> tuple[OptionsContext, int, str]:
    """Apply the options records of one data set; (context, records read, error or "").

    Bytes after the last record fewer than the shortest record are padding.
    """
    kinds = []
    for enterprise, element_id, _ in template.fields:
        known = None if enterprise == SCOPE_V9 else element(enterprise, element_id)
        kinds.append(None if known is None else known.kind == STRING)
    pos, count = start, 0
    while end - pos >= max(template.min_length, 1):
        spans = walk(data, pos, end, template.fields)
        if spans is None:
            return ctx, count, f"options record at offset {pos} runs past the set end"
        values: dict[Key, int | str] = {}
        for (enterprise, element_id, _), (at, length), string in zip(
            template.fields, spans, kinds, strict=True
        ):
            if string is not None and (enterprise, element_id) not in values:
                values[(enterprise, element_id)] = _read(data, at, length, string)
        ctx = _learn(ctx, values)
        count += 1
        last_at, last_length = spans[-1]
        pos = last_at + last_length
    return ctx, count, ""
