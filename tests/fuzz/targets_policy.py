"""Fuzz targets for the ipqosconf policy language: ``diffserv check``, ``fmt`` and ``explain``.

``policy`` takes the bytes of a policy file and does what the commands do with it: decode
them as the CLI decodes a file, check the text (lexer, parser, validation, model), and for
a valid policy print the canonical form, check that it parses back to the same policy and
prints the same again, and explain it. Diagnostics must be printable too, in text and JSON.

Host names go to a stub resolver (never DNS), so every case is local and fast. A problem
the checker reports is a PolicyCheckError (the project's own error); anything else that
escapes, and a canonical form that does not read back, is a finding.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness import FuzzTarget

from diffserv.cli.policy_cmd import decode_policy
from diffserv.policy import check, diagnostics_to_json, format_diagnostic, static_resolver
from diffserv.policy.explain import explain_policy
from diffserv.policy.printer import format_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
RESOLVER = static_resolver(
    {
        "eng-subnet": ["192.0.2.1"],
        "ebay-subnet": ["198.51.100.7"],
        "web.example.net": ["192.0.2.10", "2001:db8::10"],
        "v6only": ["2001:db8::1"],
    }
)

# Small near misses: each is one step from something the language accepts or refuses.
NEAR_MISSES = [
    b"",
    b"fmt_version 1.0\n",
    b"fmt_version 1.0\naction {\n",
    b"fmt_version 1.0\naction { module ipgpc name ipgpc.classify }\n",
    b'fmt_version 1.0\naction { module ipgpc name "ipgpc.classify"\n'
    b"  class { name c next_action m }\n"
    b"  filter { name f class c saddr web.example.net dport http }\n}\n"
    b"action { module dscpmk name m params { dscp_map {0-63:46} next_action continue } }\n",
    b"fmt_version 1.0\naction { module ipgpc name ipgpc.classify\n"
    b"  class { name c next_action t }\n  filter { name f class c protocol tcp user 0 }\n}\n"
    b"action { module tokenmt name t params { committed_rate 1000000 committed_burst 80000\n"
    b"  peak_rate 2000000 peak_burst 160000 color_aware true color_map {0-63:GREEN;10:RED}\n"
    b"  green_action_name continue yellow_action_name drop red_action_name drop } }\n",
    b"fmt_version 1.0\naction { module ipgpc name ipgpc.classify\n"
    b"  class { name c next_action a }\n"
    b"  filter { name f class c direction { LOCAL_OUT, FWD_OUT } ip_version V6 daddr v6only }\n"
    b"}\naction { module tswtclmt name a params { committed_rate 10 peak_rate 20 window 1\n"
    b"  green_action_name b yellow_action_name b red_action_name a } }\n"
    b"action { module flowacct name b params { max_limit 1 next_action continue } }\n",
    b"fmt_version 1.0\naction { module ipgpc name ipgpc.classify\n"
    b"  class { name c next_action d }\n  filter { name f class c dsfield 0xb8 dsfield_mask 0xfc"
    b" priority 4294967295 if_name lo }\n}\n"
    b"action { module dlcosmk name d params { cos 7 next_action continue } }\n",
    b'fmt_version 1.0 action { "module" ipgpc name x # comment "\n} }}{{ "unterminated\n',
    b"fmt_version 1.0\naction { module ipgpc name ipgpc.classify filter { name f class c "
    b"sport ht\x00tp protocol t\x00cp user ro\x00ot priority 99999999999999999999999 } }\n",
]


def seeds() -> list[bytes]:
    return [path.read_bytes() for path in sorted(EXAMPLES.glob("*.conf"))] + NEAR_MISSES


class RoundTripError(AssertionError):
    """A valid policy whose canonical form does not read back the same."""


def run_policy(data: bytes) -> None:
    text = decode_policy("fuzz.conf", data)  # not UTF-8: the CLI's unreadable-file error
    result = check(text, "fuzz.conf", resolver=RESOLVER)
    for diagnostic in result.diagnostics:
        format_diagnostic(diagnostic)
    json.loads(diagnostics_to_json(result.diagnostics))
    policy = result.policy
    if policy is None:
        return
    canonical = format_policy(policy)
    again = check(canonical, "canonical.conf", resolver=RESOLVER)
    if again.policy is None:
        raise RoundTripError(
            "canonical form does not parse: "
            + "; ".join(d.message for d in again.errors[:3])
            + f"\n{canonical[:2000]}"
        )
    if again.policy != policy:
        raise RoundTripError(f"canonical form reads back differently:\n{canonical[:2000]}")
    if format_policy(again.policy) != canonical:
        raise RoundTripError(f"canonical form is not stable:\n{canonical[:2000]}")
    explain_policy(policy, title="fuzz.conf")


TARGETS = [FuzzTarget("policy", run_policy, seeds, max_len=1 << 10)]
