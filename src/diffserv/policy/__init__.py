"""The ipqosconf policy language: read a file into a typed, validated ``Policy``.

``load``/``parse`` raise ``PolicyCheckError`` with every diagnostic; ``check`` returns them.
"""

from __future__ import annotations

from diffserv.policy.build import check, check_file, load, parse, read_policy_text
from diffserv.policy.diagnostics import (
    CheckResult,
    PolicyCheckError,
    diagnostics_to_json,
    format_diagnostic,
    format_diagnostics,
)
from diffserv.policy.hosts import (
    SYSTEM_HOSTS,
    HostDatabase,
    Resolver,
    StaticHostDatabase,
    SystemHostDatabase,
    static_resolver,
    system_resolver,
)
from diffserv.policy.model import Diagnostic, Location, Policy

__all__ = [
    "SYSTEM_HOSTS",
    "CheckResult",
    "Diagnostic",
    "HostDatabase",
    "Location",
    "Policy",
    "PolicyCheckError",
    "Resolver",
    "StaticHostDatabase",
    "SystemHostDatabase",
    "check",
    "check_file",
    "diagnostics_to_json",
    "format_diagnostic",
    "format_diagnostics",
    "load",
    "parse",
    "read_policy_text",
    "static_resolver",
    "system_resolver",
]
