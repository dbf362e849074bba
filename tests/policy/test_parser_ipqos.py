"""Good paths of the parser: every construct and type lands in the typed model as real values."""

from __future__ import annotations

import ipaddress
import json
import pwd
from pathlib import Path

import pytest

from diffserv.directions import FWD_OUT, LOCAL_OUT
from diffserv.errors import InputDataError, PolicyFileError
from diffserv.policy import (
    SYSTEM_HOSTS,
    PolicyCheckError,
    check,
    diagnostics_to_json,
    load,
    parse,
    static_resolver,
)
from diffserv.policy.model import (
    CONTINUE,
    DEFER,
    DROP,
    GREEN,
    IP_V4,
    IP_V6,
    RED,
    YELLOW,
    HostName,
)
from diffserv.policy.schema import DEFAULT_COLOR_MAP, action_references

NO_DNS = static_resolver(
    {
        "web.example.net": ["192.0.2.10", "2001:db8::10"],
        "v4only.example.net": ["198.51.100.7"],
        "mapped.example.net": ["::ffff:203.0.113.5"],
    }
)

SAMPLE2 = """\
# ipqosconf.2.sample, with a real port and host
fmt_version 1.0

action {
	module ipgpc
	# The name of the classifier action is fixed.
	name ipgpc.classify
	params {
		global_stats TRUE
	}
	filter {
		name myfilter
		class meter_myapp
		sport 5001
		daddr web.example.net
	}
	class {
		name meter_myapp
		next_action meter5mbps
		enable_stats true
	}
}

action {
	module tokenmt
	name meter5mbps
	params {
		committed_rate 5000000
		committed_burst 5000000
		peak_burst 10000000
		global_stats true
		red_action_name af13
		yellow_action_name af12
		green_action_name af11
		color_aware false
	}
}

action {
	module dscpmk
	name af11
	params {
		global_stats true
		next_action acct_classaf1
		dscp_map {0-63:10}
	}
}

action {
	module dscpmk
	name af12
	params {
		next_action acct_classaf1
		dscp_map {0-63:12}
	}
}

action {
	module dscpmk
	name af13
	params {
		next_action acct_classaf1
		dscp_map {0-63:14}
	}
}

action {
	module flowacct
	name acct_classaf1
	params {
		timeout 60000
		timer 15000
		max_limit 2048
		next_action continue
	}
}
"""


def classifier(body: str, *, classes: str = "") -> str:
    return (
        "fmt_version 1.0\naction {\n\tmodule ipgpc\n\tname ipgpc.classify\n"
        + classes
        + body
        + "}\n"
    )


def one_filter(selectors: str, **kwargs: object) -> str:
    body = "\tfilter {\n\t\tname f\n\t\tclass c\n" + selectors + "\t}\n"
    cls = "\tclass {\n\t\tname c\n\t\tnext_action continue\n\t}\n"
    return classifier(body, classes=cls)


def test_sample2_model() -> None:
    policy = parse(SAMPLE2, "sample2.conf", resolver=NO_DNS)
    assert policy.fmt_version == "1.0"
    assert [a.name for a in policy.actions] == [
        "ipgpc.classify",
        "meter5mbps",
        "af11",
        "af12",
        "af13",
        "acct_classaf1",
    ]
    ipgpc = policy.classifier
    assert ipgpc.global_stats is True and ipgpc.params == ()
    assert ipgpc.location is not None and ipgpc.location.line == 4
    (flt,) = ipgpc.filters
    assert flt.name == "myfilter" and flt.class_name == "meter_myapp" and flt.sport == 5001
    assert flt.daddr == HostName(
        "web.example.net",
        (ipaddress.IPv4Network("192.0.2.10/32"), ipaddress.IPv6Network("2001:db8::10/128")),
    )
    (cls,) = ipgpc.classes
    assert (cls.name, cls.next_action, cls.enable_stats) == ("meter_myapp", "meter5mbps", True)
    meter = policy.action("meter5mbps")
    # schema order, not file order; global_stats is a field
    assert meter.params == (
        ("red_action_name", "af13"),
        ("yellow_action_name", "af12"),
        ("green_action_name", "af11"),
        ("committed_rate", 5_000_000),
        ("committed_burst", 5_000_000),
        ("peak_burst", 10_000_000),
        ("color_aware", False),
    )
    assert meter.global_stats is True
    assert policy.action("af11").array_param("dscp_map") == (10,) * 64
    acct = policy.action("acct_classaf1")
    assert acct.params == (
        ("next_action", CONTINUE),
        ("timer", 15000),
        ("timeout", 60000),
        ("max_limit", 2048),
    )
    assert list(action_references(meter)) == ["af13", "af12", "af11"]
    assert policy.warnings == ()


def test_same_text_parses_equal_and_locations_do_not_matter() -> None:
    a = parse(SAMPLE2, "a.conf", resolver=NO_DNS)
    b = parse("\n\n" + SAMPLE2, "b.conf", resolver=NO_DNS)
    assert a == b


def test_head_and_clauses_in_any_order() -> None:
    text = """fmt_version 1.0
action {
	name ipgpc.classify
	module ipgpc
	filter { name f class c protocol udp }
	class { next_action m name c }
	params { global_stats false }
	filter { class default name g dport 53 }
}
action { name m module dscpmk params { next_action continue } }
"""
    policy = parse(text)
    ipgpc = policy.classifier
    assert [f.name for f in ipgpc.filters] == ["f", "g"]
    assert ipgpc.filters[1].class_name == "default"
    assert ipgpc.classes[0].next_action == "m"
    assert policy.action("m").params == (("next_action", CONTINUE),)


def test_every_filter_type_converts() -> None:
    root = pwd.getpwuid(0).pw_name
    text = one_filter(
        f"""\t\tuser {root}
		projid 7
		if_name lo
		direction {{ LOCAL_OUT, FWD_OUT }}
		protocol tcp
		dsfield 0x28
		dsfield_mask 0xfc
		saddr 10.1.2.3/8
		daddr 10.9.9.9
		sport 0x50
		dport https
		priority 5
		precedence 4294967295
		ip_version V4
"""
    )
    # the user and interface names are this machine's: the system's database reads them
    flt = parse(text, resolver=NO_DNS, hosts=SYSTEM_HOSTS).classifier.filters[0]
    assert flt.user == 0
    assert flt.projid == 7
    assert flt.if_name == "lo"
    assert flt.direction == LOCAL_OUT | FWD_OUT
    assert flt.protocol == 6
    assert (flt.dsfield, flt.dsfield_mask) == (0x28, 0xFC)
    assert flt.saddr == ipaddress.IPv4Network("10.0.0.0/8")
    assert flt.daddr == ipaddress.IPv4Network("10.9.9.9/32")
    assert (flt.sport, flt.dport) == (80, 443)
    assert (flt.priority, flt.precedence) == (5, 2**32 - 1)
    assert flt.ip_version == IP_V4


def test_v6_and_mapped_literals() -> None:
    flt = parse(one_filter("\t\tsaddr 2001:db8::/32\n\t\tip_version {V6}\n")).classifier.filters[0]
    assert flt.saddr == ipaddress.IPv6Network("2001:db8::/32") and flt.ip_version == IP_V6
    flt = parse(one_filter("\t\tdaddr ::ffff:192.0.2.1\n")).classifier.filters[0]
    assert flt.daddr == ipaddress.IPv4Network("192.0.2.1/32")


def test_numeric_user_not_in_passwd_is_accepted() -> None:
    assert parse(one_filter("\t\tuser 31337\n")).classifier.filters[0].user == 31337


def test_repeated_if_name_last_wins() -> None:
    flt = parse(one_filter("\t\tif_name nosuch0\n\t\tif_name lo\n")).classifier.filters[0]
    assert flt.if_name == "lo"


def test_missing_interface_is_a_warning() -> None:
    result = check(one_filter("\t\tif_name capeth7\n"), "p.conf")
    assert result.policy is not None
    assert result.policy.classifier.filters[0].if_name == "capeth7"
    (warning,) = result.warnings
    assert str(warning.location) == "p.conf:12:11"
    assert warning.message == "invalid interface `capeth7`: it does not exist on this host"
    assert result.policy.warnings == (warning,)
    strict = check(one_filter("\t\tif_name capeth7\n"), "p.conf", strict=True)
    assert strict.policy is None and strict.errors[0].message == warning.message


def test_host_name_resolution_follows_ip_version_and_literals() -> None:
    flt = parse(
        one_filter("\t\tdaddr web.example.net\n\t\tip_version V6\n"), resolver=NO_DNS
    ).classifier.filters[0]
    assert flt.daddr == HostName("web.example.net", (ipaddress.IPv6Network("2001:db8::10/128"),))
    flt = parse(
        one_filter("\t\tsaddr 10.0.0.0/8\n\t\tdaddr web.example.net\n"), resolver=NO_DNS
    ).classifier.filters[0]
    assert flt.daddr == HostName("web.example.net", (ipaddress.IPv4Network("192.0.2.10/32"),))
    flt = parse(one_filter("\t\tdaddr mapped.example.net\n"), resolver=NO_DNS).classifier.filters[0]
    assert flt.daddr == HostName("mapped.example.net", (ipaddress.IPv4Network("203.0.113.5/32"),))


def test_unresolvable_host_is_warning_then_strict_error() -> None:
    text = one_filter("\t\tdaddr nowhere.example.net\n")
    result = check(text, "h.conf", resolver=NO_DNS)
    assert result.policy is not None
    assert result.policy.classifier.filters[0].daddr == HostName("nowhere.example.net", ())
    (warning,) = result.warnings
    assert str(warning.location) == "h.conf:12:9"
    assert warning.message.startswith("failed to resolve dst host name `nowhere.example.net`")
    assert check(text, "h.conf", resolver=NO_DNS, strict=True).policy is None


def test_all_modules_params() -> None:
    text = classifier(
        "",
        classes="\tclass { name a next_action tsw }\n\tclass { name b next_action cos5 }\n",
    ) + (
        "action { module tswtclmt name tsw params { committed_rate 1000 peak_rate 2000 "
        "window 100 red_action_name drop yellow_action_name tok green_action_name continue } }\n"
        "action { module tokenmt name tok params { committed_rate 64000 committed_burst 8000 "
        "peak_rate 128000 peak_burst 16000 red_action_name drop yellow_action_name ipp.defer "
        "green_action_name continue color_aware TRUE color_map { 0 : RED ; 1-2 : YELLOW } } }\n"
        "action { module dlcosmk name cos5 params { cos 5 next_action continue "
        "global_stats true } }\n"
    )
    policy = parse(text)
    assert policy.action("tsw").params == (
        ("red_action_name", DROP),
        ("yellow_action_name", "tok"),
        ("green_action_name", CONTINUE),
        ("committed_rate", 1000),
        ("peak_rate", 2000),
        ("window", 100),
    )
    tok = policy.action("tok")
    assert tok.ref_param("yellow_action_name") == DEFER
    assert tok.bool_param("color_aware") is True
    cmap = tok.array_param("color_map")
    assert cmap is not None and cmap[:3] == (RED, YELLOW, YELLOW)
    assert cmap[3:] == DEFAULT_COLOR_MAP[3:] and cmap[12] == YELLOW and cmap[46] == GREEN
    cos = policy.action("cos5")
    assert cos.int_param("cos") == 5 and cos.global_stats


def test_quoted_names_and_fmt_version_variants() -> None:
    text = (
        'FMT_Version 0.0\naction { module ipgpc name ipgpc.classify class { name "my class" '
        'next_action continue } filter { name "a b" class "my class" protocol 17 } }\n'
    )
    policy = parse(text)
    assert policy.classifier.classes[0].name == "my class"
    assert policy.classifier.filters[0].class_name == "my class"


def test_default_class_may_be_redefined() -> None:
    text = classifier("\tclass { name default next_action drop enable_stats true }\n")
    cls = parse(text).classifier.classes[0]
    assert (cls.name, cls.next_action, cls.enable_stats) == ("default", DROP, True)


def test_load_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "p.conf"
    path.write_text(SAMPLE2)
    policy = load(path, resolver=NO_DNS)
    assert policy.source == str(path)
    assert policy.classifier.location is not None
    assert policy.classifier.location.filename == str(path)


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    # the same kind of error as an unreadable capture (exit status 2)
    missing = tmp_path / "missing.conf"
    with pytest.raises(InputDataError, match=r"cannot read .*missing\.conf") as info:
        load(missing)
    assert str(info.value) == f"cannot read {missing}: No such file or directory"
    assert info.value.where == str(missing)
    bad = tmp_path / "bin.conf"
    bad.write_bytes(b"fmt_version 1.0\n\xff\xfe")
    with pytest.raises(InputDataError, match="not UTF-8"):
        load(bad)


def test_policy_check_error_carries_every_diagnostic() -> None:
    text = one_filter("\t\tprotocol 0\n\t\tdport 0\n")
    with pytest.raises(PolicyCheckError) as info:
        parse(text, "e.conf")
    assert isinstance(info.value, PolicyFileError)
    assert len(info.value.diagnostics) == 2
    lines = str(info.value).splitlines()
    assert lines[0] == "e.conf:12:12: error: invalid protocol `0`: protocol must be 1..255"
    assert lines[1] == "    \t\tprotocol 0"
    assert lines[2] == "    \t\t         ^"
    assert "e.conf:13:9: error: invalid port `0`: out of range 1..65535" in lines


def test_diagnostics_json() -> None:
    result = check(one_filter("\t\tdport 0\n"), "j.conf")
    data = json.loads(diagnostics_to_json(result.diagnostics))
    assert data == [
        {
            "severity": "error",
            "message": "invalid port `0`: out of range 1..65535",
            "file": "j.conf",
            "line": 12,
            "column": 9,
            "source_line": "\t\tdport 0",
            "hint": None,
        }
    ]


ORACLE_37_1 = """\
fmt_version 1.0
action {
	module ipgpc
	name ipgpc.classify
	class {
		name all_tcp
		next_action meter1
	}
	filter {
		name tcp
		class all_tcp
		protocol tcp
	}
}
action {
    module tokenmt
    name meter1
    params {
@committed_rate 4000000
@peak_rate 8000000
@committed_burst 4000000
@peak_burst 8000000
@global_stats true
@red_action_name continue
@yellow_action_name continue
@green_action_name continue
@color_aware true
@color_map {0-20,22:GREEN;21,23-42:RED;43-63:YELLOW}
    }
}
""".replace("@", "\t      ")  # the guide mixes tabs and spaces

IPQOSCONF_8 = """\
fmt_version 1.0
action {
	module ipgpc
	name ipgpc.classify
	params { global_stats true }
	class { name from_eng enable_stats true next_action AF_CL1 }
	class { name from_ebay enable_stats true next_action drop }
	filter { name from_eng saddr eng-subnet class from_eng }
	filter { name from_ebay saddr ebay-subnet class from_ebay }
}
action {
	module tokenmt
	name AF_CL1
	params {
		committed_rate 64
		committed_burst 75
		peak_burst 150
		global_stats true
		red_action_name drop
		yellow_action_name markAF12
		green_action_name markAF11
	}
}
action {
	module dscpmk
	name markAF11
	params {
		global_stats false
		dscp_map { 0-63:28 }
		dscp_detailed_stats true
		next_action acct1
	}
}
action {
	module dscpmk
	name markAF12
	params {
		global_stats false
		dscp_map { 0-63:30 }
		dscp_detailed_stats true
		next_action acct1
	}
}
action {
	module flowacct
	name acct1
	params {
		timer 10
		timeout 30
		max_limit 1024
		next_action continue
	}
}
"""


def test_oracle_color_aware_example() -> None:
    meter = parse(ORACLE_37_1).action("meter1")
    assert meter.int_param("peak_rate") == 8_000_000
    cmap = meter.array_param("color_map")
    assert cmap is not None
    assert [cmap[i] for i in (0, 20, 21, 22, 23, 42, 43, 63)] == [
        GREEN,
        GREEN,
        RED,
        GREEN,
        RED,
        RED,
        YELLOW,
        YELLOW,
    ]


def test_ipqosconf_8_example() -> None:
    unresolved = check(IPQOSCONF_8, "man.conf", resolver=NO_DNS)
    assert unresolved.ok and len(unresolved.warnings) == 2
    resolver = static_resolver({"eng-subnet": ["192.0.2.1"], "ebay-subnet": ["198.51.100.9"]})
    policy = parse(IPQOSCONF_8, resolver=resolver)
    assert policy.action("AF_CL1").int_param("peak_burst") == 150
    assert policy.action("markAF11").bool_param("dscp_detailed_stats") is True
    assert policy.classifier.filters[0].saddr == HostName(
        "eng-subnet", (ipaddress.IPv4Network("192.0.2.1/32"),)
    )
