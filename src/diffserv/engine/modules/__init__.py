"""The IPQoS modules as engine operators, looked up by module name.

Each entry names a module file exposing ``build(action, ctx) -> Operator``;
imports are lazy so a run only compiles the kernels its policy uses.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from diffserv.engine.context import BuildContext
from diffserv.engine.operator import Operator
from diffserv.policy.model import Action

Factory = Callable[[Action, BuildContext], Operator]

MODULE_FACTORIES: dict[str, str] = {
    "ipgpc": "diffserv.engine.modules.ipgpc",
    "tokenmt": "diffserv.engine.modules.tokenmt",
    "tswtclmt": "diffserv.engine.modules.tswtclmt",
    "dscpmk": "diffserv.engine.modules.dscpmk",
    "dlcosmk": "diffserv.engine.modules.dlcosmk",
    "flowacct": "diffserv.engine.modules.flowacct",
}


def factory_for(module: str) -> Factory:
    """The operator factory of an IPQoS module name (KeyError if unknown)."""
    build: Factory = import_module(MODULE_FACTORIES[module]).build
    return build
