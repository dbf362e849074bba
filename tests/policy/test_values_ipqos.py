"""Value types of the language, with the stricter rules of docs/policy.md."""

from __future__ import annotations

import ipaddress
import os
import pwd
import socket
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffserv.directions import FWD_OUT, LOCAL_OUT
from diffserv.policy import hosts
from diffserv.policy.hosts import SYSTEM_HOSTS
from diffserv.policy.model import GREEN, IP_V4, IP_V6, RED, YELLOW
from diffserv.policy.schema import (
    DEFAULT_COLOR_MAP,
    IDENTITY_DSCP_MAP,
    ParamSpec,
    ParamType,
    lookup_param,
)
from diffserv.policy.values import (
    BadValueError,
    check_host_name,
    check_if_name,
    parse_address_literal,
    parse_boolean,
    parse_enum,
    parse_int_array,
    parse_int_text,
    parse_integer,
    parse_mindex,
    parse_port,
    parse_protocol,
    parse_user,
)


def spec(module: str, name: str, place: str = "params") -> ParamSpec:
    found = lookup_param(module, name, place)
    assert found is not None
    return found


DSCP_MAP = spec("dscpmk", "dscp_map")
COLOR_MAP = spec("tokenmt", "color_map")
DIRECTION = spec("ipgpc", "direction", "filter")
IP_VERSION = spec("ipgpc", "ip_version", "filter")
COS = spec("dlcosmk", "cos")


# -- numbers ------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_uint32_decimal_and_hex(value: int) -> None:
    assert parse_integer(str(value), ParamType.UINT32) == value
    assert parse_integer(hex(value), ParamType.UINT32) == value
    assert parse_integer(hex(value).upper().replace("0X", "0x"), ParamType.UINT32) == value


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_int32_accepts_negative_decimal(value: int) -> None:
    assert parse_integer(str(value), ParamType.INT32) == value


@given(st.integers(min_value=256, max_value=10**6))
def test_uint8_range(value: int) -> None:
    with pytest.raises(BadValueError, match=r"invalid uint8 `\d+`: out of range 0\.\.255"):
        parse_integer(str(value), ParamType.UINT8)


@pytest.mark.parametrize("text", ["5000abc", "010", "08", "1e3", "0x", "+5", "", "1_000", "0b11"])
def test_lenient_c_numbers_are_errors(text: str) -> None:
    with pytest.raises(BadValueError) as info:
        parse_integer(text, ParamType.UINT32)
    assert info.value.message == f"invalid uint32 `{text}`"


def test_octal_looking_number_gets_a_hint() -> None:
    with pytest.raises(BadValueError) as info:
        parse_integer("010", ParamType.UINT32)
    assert info.value.hint is not None and "octal" in info.value.hint


@given(st.text(alphabet="0123456789abcdefxX-+ ", max_size=8))
def test_parse_int_text_is_strict(text: str) -> None:
    value = parse_int_text(text)
    if value is None:
        return
    if text[:2].lower() == "0x":
        assert int(text, 16) == value
    else:
        assert str(value) == text  # canonical decimal only: no sign on 0, no leading zeros


# -- booleans, enums ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("true", True), ("TRUE", True), ("False", False)])
def test_booleans_any_case(text: str, value: bool) -> None:
    assert parse_boolean(text) is value


@pytest.mark.parametrize("text", ["yes", "1", "on", ""])
def test_bad_boolean(text: str) -> None:
    with pytest.raises(BadValueError, match="invalid boolean"):
        parse_boolean(text)


def test_enum_single_and_list() -> None:
    assert parse_enum(["LOCAL_OUT"], DIRECTION, listed=False) == LOCAL_OUT
    assert parse_enum(["LOCAL_OUT,", "FWD_OUT"], DIRECTION, listed=True) == LOCAL_OUT | FWD_OUT
    assert parse_enum(["V4", ",", "V6"], IP_VERSION, listed=True) == IP_V4 | IP_V6


@given(st.lists(st.sampled_from(["LOCAL_IN", "LOCAL_OUT", "FWD_IN", "FWD_OUT"]), min_size=1))
def test_enum_list_is_or_of_bits(names: list[str]) -> None:
    expected = 0
    for name in names:
        expected |= {"LOCAL_IN": 1, "LOCAL_OUT": 2, "FWD_IN": 4, "FWD_OUT": 8}[name]
    assert parse_enum([", ".join(names)], DIRECTION, listed=True) == expected


def test_enum_errors() -> None:
    with pytest.raises(BadValueError) as info:
        parse_enum(["local_out"], DIRECTION, listed=False)
    assert info.value.message == "unrecognized value, local_out, for `direction`"
    assert info.value.hint == "did you mean `LOCAL_OUT`?"
    with pytest.raises(BadValueError, match="malformed value list"):
        parse_enum(["V4", "V6"], IP_VERSION, listed=True)
    with pytest.raises(BadValueError, match="malformed value list"):
        parse_enum([], IP_VERSION, listed=True)


# -- arrays -------------------------------------------------------------------------------


def test_dscp_map_ranges_and_identity_default() -> None:
    got = parse_int_array(["0-9:46;", "12,14:0"], DSCP_MAP)
    expected = list(IDENTITY_DSCP_MAP)
    for i in range(10):
        expected[i] = 46
    expected[12] = expected[14] = 0
    assert got == tuple(expected)


def test_color_map_documented_example() -> None:
    got = parse_int_array(["0-20,22:GREEN;21,23-42:RED;43-63:YELLOW"], COLOR_MAP)
    assert got[0] == got[20] == got[22] == GREEN
    assert got[21] == got[23] == got[42] == RED
    assert got[43] == got[63] == YELLOW


def test_color_map_unset_entries_take_default_map() -> None:
    got = parse_int_array(["0:RED"], COLOR_MAP)
    assert got[0] == RED
    assert got[1:] == DEFAULT_COLOR_MAP[1:]
    assert DEFAULT_COLOR_MAP[12] == YELLOW and DEFAULT_COLOR_MAP[14] == RED
    assert DEFAULT_COLOR_MAP[46] == GREEN


def test_reversed_range_is_swapped() -> None:
    assert parse_int_array(["5-3:0"], DSCP_MAP)[3:6] == (0, 0, 0)


@pytest.mark.parametrize(
    ("words", "why"),
    [
        (["0-64:1"], "index 64 is out of range 0..63"),
        (["0-63:64"], "value 64 is out of range 0..63"),
        (["0-63"], "is not RANGES:VALUE"),
        (["a:1"], "index `a` is not a decimal number"),
        (["0:0x1"], "value `0x1` is not a decimal number"),
        ([], "it is empty"),
    ],
)
def test_dscp_map_errors(words: list[str], why: str) -> None:
    with pytest.raises(BadValueError) as info:
        parse_int_array(words, DSCP_MAP)
    assert info.value.message.startswith("array declaration for `dscp_map` is invalid")
    assert why in info.value.message


def test_color_map_bad_name_hint() -> None:
    with pytest.raises(BadValueError) as info:
        parse_int_array(["0:GREN"], COLOR_MAP)
    assert info.value.hint == "did you mean `GREEN`?"


@given(
    st.lists(
        st.tuples(st.integers(0, 63), st.integers(0, 63), st.integers(0, 63)),
        min_size=1,
        max_size=6,
    )
)
def test_dscp_map_later_entries_win(entries: list[tuple[int, int, int]]) -> None:
    text = ";".join(f"{a}-{b}:{v}" for a, b, v in entries)
    expected = list(IDENTITY_DSCP_MAP)
    for a, b, v in entries:
        for i in range(min(a, b), max(a, b) + 1):
            expected[i] = v
    assert parse_int_array([text], DSCP_MAP) == tuple(expected)


# -- addresses ----------------------------------------------------------------------------


@given(st.ip_addresses(v=4), st.integers(1, 32))
def test_v4_literal_with_prefix(address: ipaddress.IPv4Address, prefix: int) -> None:
    net = parse_address_literal(f"{address}/{prefix}")
    assert net == ipaddress.IPv4Network((address, prefix), strict=False)
    assert parse_address_literal(str(address)) == ipaddress.IPv4Network(address)


@given(st.ip_addresses(v=6), st.integers(1, 128))
def test_v6_literal_with_prefix(address: ipaddress.IPv6Address, prefix: int) -> None:
    if address.ipv4_mapped is not None and prefix <= 96:
        with pytest.raises(BadValueError, match="v4-mapped"):
            parse_address_literal(f"{address}/{prefix}")
        return
    net = parse_address_literal(f"{address}/{prefix}")
    assert net is not None
    if address.ipv4_mapped is None:
        assert net == ipaddress.IPv6Network((address, prefix), strict=False)
    else:
        assert net == ipaddress.IPv4Network((address.ipv4_mapped, prefix - 96), strict=False)


def test_v4_mapped_literal_becomes_ipv4_network() -> None:
    assert parse_address_literal("::ffff:10.1.2.3") == ipaddress.IPv4Network("10.1.2.3/32")
    assert parse_address_literal("::ffff:10.0.0.0/104") == ipaddress.IPv4Network("10.0.0.0/8")


def test_scoped_address_is_rejected() -> None:
    with pytest.raises(BadValueError, match="scoped addresses"):
        parse_address_literal("fe80::1%eth0")


@pytest.mark.parametrize(
    "text", ["10.0.0.0/0", "10.0.0.0/33", "::/0", "::/129", "1.2.3.4/x", "1.2.3.4/24/5"]
)
def test_bad_cidr_mask(text: str) -> None:
    with pytest.raises(BadValueError, match="invalid CIDR mask"):
        parse_address_literal(text)


def test_host_names() -> None:
    assert parse_address_literal("www.example.com") is None
    assert check_host_name("www.example.com") == "www.example.com"
    with pytest.raises(BadValueError, match="address masks aren't allowed for host names"):
        check_host_name("www.example.com/24")
    with pytest.raises(BadValueError, match=r"invalid address `1\.2\.3\.999`"):
        check_host_name("1.2.3.999")
    with pytest.raises(BadValueError, match="invalid address"):
        check_host_name("a..b")


# -- ports, protocols, users, interfaces, cos ---------------------------------------------


@given(st.integers(1, 65535))
def test_port_numbers(port: int) -> None:
    assert parse_port(str(port), SYSTEM_HOSTS) == port


def test_port_names_and_errors() -> None:
    assert parse_port("smtp", SYSTEM_HOSTS) == 25
    assert parse_port("https", SYSTEM_HOSTS) == 443
    for text in ("0", "65536", "no-such-service-xyz", "80x"):
        with pytest.raises(BadValueError, match="invalid port"):
            parse_port(text, SYSTEM_HOSTS)


def test_port_fallback_table_without_services_db(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object) -> int:
        raise OSError("no services database")

    monkeypatch.setattr(socket, "getservbyname", fail)
    monkeypatch.setattr(socket, "getprotobyname", fail)
    hosts.service_port.cache_clear()
    hosts.protocol_number.cache_clear()
    assert parse_port("nntp", SYSTEM_HOSTS) == 119
    assert parse_protocol("tcp", SYSTEM_HOSTS) == 6
    assert parse_protocol("sctp", SYSTEM_HOSTS) == 132
    hosts.service_port.cache_clear()
    hosts.protocol_number.cache_clear()


@given(st.integers(1, 255))
def test_protocol_numbers(number: int) -> None:
    assert parse_protocol(str(number), SYSTEM_HOSTS) == number


def test_protocol_names_and_zero() -> None:
    assert parse_protocol("udp", SYSTEM_HOSTS) == 17
    assert parse_protocol("icmp", SYSTEM_HOSTS) == 1
    for text in ("0", "256", "ip", "nonsense-proto"):
        with pytest.raises(BadValueError, match="invalid protocol"):
            parse_protocol(text, SYSTEM_HOSTS)


def test_users() -> None:
    root = pwd.getpwuid(0).pw_name
    assert parse_user(root, SYSTEM_HOSTS) == 0
    assert parse_user("4242", SYSTEM_HOSTS) == 4242  # numeric uids need not exist on this host
    with pytest.raises(BadValueError, match="no such user name on this host"):
        parse_user("no-such-user-xyz", SYSTEM_HOSTS)
    with pytest.raises(BadValueError, match="invalid user `12ab`"):
        parse_user("12ab", SYSTEM_HOSTS)


def test_if_name_syntax() -> None:
    assert check_if_name("eth0") == "eth0"
    with pytest.raises(BadValueError, match="invalid interface name"):
        check_if_name("a" * 16)
    with pytest.raises(BadValueError, match="invalid interface name"):
        check_if_name("a/b")


def test_interface_exists_for_loopback() -> None:
    assert hosts.interface_exists("lo") == os.path.exists("/sys/class/net/lo")
    assert not hosts.interface_exists("nosuchif0")


def test_cos_index() -> None:
    assert [parse_mindex(str(i), COS) for i in range(8)] == list(range(8))
    with pytest.raises(BadValueError) as info:
        parse_mindex("8", COS)
    assert info.value.message == "invalid value, 8, for `cos`: must be 0..7"
    with pytest.raises(BadValueError, match="invalid uint8 `high`"):
        parse_mindex("high", COS)


def test_static_resolver_filters_families() -> None:
    resolve = hosts.static_resolver({"h": ["192.0.2.1", "2001:db8::1"]})
    assert [str(a) for a in resolve("h", IP_V4)] == ["192.0.2.1"]
    assert [str(a) for a in resolve("h", IP_V6)] == ["2001:db8::1"]
    with pytest.raises(LookupError):
        resolve("other", IP_V4 | IP_V6)


def test_system_resolver_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_args: object) -> list[object]:
        time.sleep(0.5)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    monkeypatch.setattr(hosts, "RESOLVE_TIMEOUT_S", 0.05)
    with pytest.raises(LookupError, match="timed out"):
        hosts.system_resolver("slow.example.net", IP_V4)


def test_system_resolver_localhost() -> None:
    addresses = hosts.system_resolver("localhost", IP_V4)
    assert ipaddress.ip_address("127.0.0.1") in addresses
