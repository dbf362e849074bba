"""The host database: check, fmt and explain give the same answers on every machine once
the database is pinned, whatever this machine's /etc/services, passwd or interfaces hold."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from diffserv.cli import policy_cmd
from diffserv.cli.main import main
from diffserv.policy import (
    SYSTEM_HOSTS,
    HostDatabase,
    StaticHostDatabase,
    SystemHostDatabase,
    check,
    parse,
)
from diffserv.policy.explain import describe_filter, explain_policy
from diffserv.policy.hosts import FALLBACK_PROTOCOLS, FALLBACK_SERVICES
from diffserv.policy.model import IP_V4, IP_V6
from diffserv.policy.printer import format_policy, protocol_name, service_name, user_name

# Names no real machine has: only the pinned database knows them.
PINNED = StaticHostDatabase(
    services={**FALLBACK_SERVICES, "qos-frobnicate": 47001},
    protocols=FALLBACK_PROTOCOLS,
    users={"qos-pinned-user": 4711},
    interfaces=("qospin0",),
    hosts={"pinned.example": ["192.0.2.7", "2001:db8::7"]},
)

POLICY = """\
fmt_version 1.0

action {
	module ipgpc
	name ipgpc.classify

	params {
		global_stats false
	}

	class {
		name web
		next_action continue
		enable_stats false
	}

	filter {
		name f1
		class web
		user qos-pinned-user
		if_name qospin0
		protocol tcp
		daddr pinned.example
		dport qos-frobnicate
	}
}
"""


def test_the_pinned_names_are_not_this_machines() -> None:
    # the premise of the other tests: the system database does not know these names
    assert SYSTEM_HOSTS.service_port("qos-frobnicate") is None
    assert SYSTEM_HOSTS.user_id("qos-pinned-user") is None
    assert not SYSTEM_HOSTS.interface_exists("qospin0")


def test_check_fmt_explain_with_the_pinned_database() -> None:
    result = check(POLICY, "p.conf", hosts=PINNED)
    assert result.policy is not None, result.diagnostics
    assert result.diagnostics == ()
    flt = result.policy.classifier.filters[0]
    assert (flt.user, flt.dport, flt.protocol, flt.if_name) == (4711, 47001, 6, "qospin0")
    assert [str(a) for a in flt.daddr.addresses] == ["192.0.2.7/32", "2001:db8::7/128"]  # type: ignore[union-attr]
    # the canonical form writes the numbers back as the pinned names
    assert format_policy(result.policy, PINNED) == POLICY
    text = explain_policy(result.policy, hosts=PINNED)
    assert "TCP to host pinned.example (192.0.2.7, 2001:db8::7) port 47001 (qos-frobnicate)" in text
    assert "sent by user qos-pinned-user (uid 4711)" in text
    assert "on interface qospin0" in text


def test_the_same_policy_with_the_system_database_differs() -> None:
    result = check(POLICY, "p.conf", hosts=SYSTEM_HOSTS)
    assert result.policy is None
    messages = " ".join(d.message for d in result.diagnostics)
    assert "qos-pinned-user" in messages and "qos-frobnicate" in messages


def test_answers_do_not_depend_on_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every system database broken, the pinned answers stay the same."""
    before = (
        format_policy(parse(POLICY, hosts=PINNED), PINNED),
        explain_policy(parse(POLICY, hosts=PINNED), hosts=PINNED),
    )

    def broken(*_args: object, **_kwargs: object) -> object:
        raise OSError("no system databases here")

    for name in ("getservbyname", "getservbyport", "getprotobyname", "getaddrinfo"):
        monkeypatch.setattr(socket, name, broken)
    monkeypatch.setattr(socket, "if_nametoindex", broken)
    after = (
        format_policy(parse(POLICY, hosts=PINNED), PINNED),
        explain_policy(parse(POLICY, hosts=PINNED), hosts=PINNED),
    )
    assert after == before


def test_numbers_are_named_through_the_database() -> None:
    renamed = StaticHostDatabase(
        services={"alt-web": 80}, protocols={"segment": 6}, users={"op": 0}
    )
    assert service_name(80, renamed) == "alt-web"
    assert protocol_name(6, renamed) == "segment"
    assert user_name(0, renamed) == "op"
    empty = StaticHostDatabase(services={}, protocols={})
    assert (service_name(80, empty), protocol_name(6, empty), user_name(0, empty)) == (
        "80",
        "6",
        "0",
    )
    flt = parse(POLICY, hosts=PINNED).classifier.filters[0]
    assert describe_filter(flt, empty).startswith("protocol 6 to host pinned.example")


def test_static_database_defaults_and_protocol() -> None:
    db: HostDatabase = StaticHostDatabase()
    assert db.service_port("smtp") == 25 and db.protocol_number("udp") == 17
    assert db.user_id("root") is None and not db.interface_exists("lo")
    with pytest.raises(LookupError):
        db.resolve("localhost", 3)
    assert isinstance(SYSTEM_HOSTS, SystemHostDatabase)


def test_static_database_keeps_read_only_copies_and_checks_addresses_at_once() -> None:
    users = {"op": 0}
    hosts = {"dual.example": ["192.0.2.7", "2001:db8::7"]}
    db = StaticHostDatabase(users=users, interfaces=["eth0"], hosts=hosts)
    users["late"] = 1
    hosts["late.example"] = ["192.0.2.8"]
    assert db.user_id("late") is None and db.interface_exists("eth0")
    with pytest.raises(LookupError):
        db.resolve("late.example", IP_V4 | IP_V6)
    assert [str(a) for a in db.resolve("dual.example", IP_V4 | IP_V6)] == [
        "192.0.2.7",
        "2001:db8::7",
    ]
    assert [str(a) for a in db.resolve("dual.example", IP_V6)] == ["2001:db8::7"]
    with pytest.raises(TypeError):
        db.users["op"] = 5  # type: ignore[index]
    with pytest.raises(AttributeError):
        db.users = {}  # type: ignore[misc]
    same = StaticHostDatabase(
        users={"op": 0}, interfaces=("eth0",), hosts={"dual.example": ("192.0.2.7", "2001:db8::7")}
    )
    assert db == same and db != StaticHostDatabase(users={"op": 0}, interfaces=("eth0",))
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        StaticHostDatabase(hosts={"bad.example": ["192.0.2.300"]})


def test_the_commands_use_one_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.conf"
    path.write_text(POLICY, encoding="utf-8")
    monkeypatch.setattr(policy_cmd, "HOSTS", PINNED)

    def run(argv: list[str]) -> tuple[int, str, str]:
        status = main(argv)
        out, err = capsys.readouterr()
        return status, out, err

    assert run(["check", str(path)])[0] == 0
    assert run(["fmt", "--check", str(path)])[0] == 0
    status, out, _ = run(["explain", str(path)])
    assert status == 0 and "port 47001 (qos-frobnicate)" in out
    monkeypatch.setattr(policy_cmd, "HOSTS", SYSTEM_HOSTS)
    assert run(["check", str(path)])[0] == 1
