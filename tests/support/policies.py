"""Policies the flow tests share: every packet into one flowacct action."""

from __future__ import annotations


def account_everything(*, timeout_ms: int, max_limit: int = 100_000, timer_ms: int = 1000) -> str:
    """One ipgpc class `default` for all traffic, accounted by the flowacct action `acct`."""
    return f"""fmt_version 1.0

action {{
	module ipgpc
	name ipgpc.classify
	class {{
		name default
		next_action acct
	}}
}}

action {{
	module flowacct
	name acct
	params {{
		timer {timer_ms}
		timeout {timeout_ms}
		max_limit {max_limit}
		next_action continue
	}}
}}
"""
