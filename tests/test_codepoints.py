"""The codepoint tables and scalar conversions, checked against the RFC arithmetic.

Expected values are computed here from the definitions (CSn = 8n, AFxy = 8x + 2y,
ToS = DSCP << 2 | ECN), never copied from a published table.
"""

from __future__ import annotations

import pytest

from diffserv.codepoints import (
    DEFAULT_DSCP_TO_PCP,
    DSCP_TABLE,
    LEGACY_TOS_BITS,
    PCP_TABLE,
    default_pcp,
    describe_dscp,
    describe_tos,
    dscp_info,
    dscp_name,
    dscp_to_precedence,
    dscp_to_tos,
    ecn_name,
    legacy_tos_names,
    parse_dscp,
    parse_ecn,
    parse_number,
    parse_tos,
    pcp_info,
    pcp_name,
    precedence_name,
    service_class,
    standard_name,
    tos_to_dscp,
    tos_to_ecn,
    tos_to_precedence,
)


def expected_names() -> dict[int, str]:
    names = {8 * n: f"CS{n}" for n in range(1, 8)}
    names |= {8 * x + 2 * y: f"AF{x}{y}" for x in range(1, 5) for y in range(1, 4)}
    names |= {0: "DF", 1: "LE", 44: "VOICE-ADMIT", 46: "EF"}
    return names


NAMES = expected_names()
ALL_DSCP = range(64)


def test_there_are_23_standard_names_and_41_unassigned_values() -> None:
    assert len(NAMES) == 23
    assert [info.dscp for info in DSCP_TABLE] == list(ALL_DSCP)
    assert sum(info.name is None for info in DSCP_TABLE) == 41


@pytest.mark.parametrize("dscp", ALL_DSCP)
def test_every_dscp_name_round_trips_through_parse(dscp: int) -> None:
    name = dscp_name(dscp)
    assert name == NAMES.get(dscp, str(dscp))
    assert standard_name(dscp) == NAMES.get(dscp)
    assert parse_dscp(name) == dscp
    assert parse_dscp(name.lower()) == dscp
    assert parse_dscp(str(dscp)) == dscp
    assert parse_dscp(hex(dscp)) == dscp
    assert parse_dscp(f"0b{dscp:06b}") == dscp


@pytest.mark.parametrize("dscp", ALL_DSCP)
@pytest.mark.parametrize("ecn", range(4))
def test_dscp_and_tos_convert_both_ways_for_every_ecn(dscp: int, ecn: int) -> None:
    tos = dscp_to_tos(dscp, ecn)
    assert tos == dscp * 4 + ecn
    assert tos_to_dscp(tos) == dscp
    assert tos_to_ecn(tos) == ecn
    assert tos_to_precedence(tos) == dscp // 8 == dscp_to_precedence(dscp)
    field = describe_tos(tos)
    assert (field.dscp, field.ecn, field.tos) == (dscp, ecn, tos)
    assert describe_dscp(dscp, ecn) == field


@pytest.mark.parametrize(
    ("tos", "dscp", "name", "ecn"),
    [
        (0x48, 18, "AF21", "Not-ECT"),  # seed 002: NetFlow verbose ToS 48
        (0x28, 10, "AF11", "Not-ECT"),  # seed 002: ToS 28
        (0xB8, 46, "EF", "Not-ECT"),  # seed 002: EF is ToS B8
        (185, 46, "EF", "ECT(1)"),  # nfdump shows EF sent ECT(1) as 185
        (136, 34, "AF41", "Not-ECT"),
        (0x20, 8, "CS1", "Not-ECT"),  # the seed 003 table mistypes CS1's binary
    ],
)
def test_worked_examples_from_the_seeds(tos: int, dscp: int, name: str, ecn: str) -> None:
    assert tos_to_dscp(tos) == dscp
    assert dscp_name(dscp) == name
    assert ecn_name(tos_to_ecn(tos)) == ecn


def test_ef_is_tos_0xb8() -> None:
    assert dscp_to_tos(parse_dscp("EF")) == 0xB8


def test_phb_groups_follow_the_rfcs() -> None:
    for info in DSCP_TABLE:
        d = info.dscp
        if d == 0:
            assert info.phb == "DF"
        elif d % 8 == 0:
            assert (info.phb, info.rfc) == ("CS", "RFC 2474")
        elif d in NAMES and NAMES[d].startswith("AF"):
            assert (info.phb, info.af_class, info.drop_precedence) == ("AF", d >> 3, (d >> 1) & 3)
        elif d in NAMES:
            assert info.phb == {46: "EF", 44: "VA", 1: "LE"}[d]
        else:
            assert info.phb == "unassigned"
            assert info.af_class is None
    assert dscp_info(46).rfc == "RFC 3246"
    assert dscp_info(44).rfc == "RFC 5865"
    assert dscp_info(1).rfc == "RFC 8622"


def test_pools_follow_rfc_2474() -> None:
    for info in DSCP_TABLE:
        expected = 1 if info.dscp % 2 == 0 else (2 if info.dscp % 4 == 3 else 3)
        assert info.pool == expected


@pytest.mark.parametrize(
    ("spelling", "dscp"),
    [
        ("ef", 46),
        ("AF21", 18),
        ("cs3", 24),
        ("le", 1),
        ("LE", 1),
        ("lephb", 1),  # nft
        ("va", 44),  # nft
        ("VOICE-ADMIT", 44),
        ("voice_admit", 44),
        ("default", 0),  # Cisco
        ("BE", 0),  # iptables --set-dscp-class
        ("df", 0),
        ("cs0", 0),
        ("nc1", 48),  # Junos
        ("nc2", 56),
        ("  Af43 ", 38),
        ("0X2E", 46),
        ("0b101110", 46),
        ("046", 46),
    ],
)
def test_names_from_other_tools_parse(spelling: str, dscp: int) -> None:
    assert parse_dscp(spelling) == dscp


def test_every_tool_spelling_parses_back_to_its_dscp() -> None:
    for info in DSCP_TABLE:
        for words in info.spellings.values():
            for word in words:
                assert parse_dscp(word) == info.dscp
        for alias in info.aliases:
            assert parse_dscp(alias) == info.dscp


def test_tool_spellings_cover_what_each_tool_accepts() -> None:
    iptables = {w for info in DSCP_TABLE for w in info.spellings.get("iptables", ())}
    assert iptables == {f"CS{n}" for n in range(8)} | {"BE", "EF"} | {
        f"AF{x}{y}" for x in range(1, 5) for y in range(1, 4)
    }
    nft = {w for info in DSCP_TABLE for w in info.spellings.get("nft", ())}
    assert {"lephb", "va", "df", "be", "ef", "cs0", "af43"} <= nft
    assert "le" not in nft  # `le` is nft's less-or-equal operator
    cisco = {w for info in DSCP_TABLE for w in info.spellings.get("cisco", ())}
    assert {"default", "ef", "af21", "cs3"} <= cisco


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("AF51", "did you mean AF41"),
        ("AF51", "AF11-AF43"),
        ("CS8", "CS0-CS7"),
        ("64", "out of range 0-63"),
        ("64", "as a ToS byte, 64 is DSCP 16 CS2"),
        ("185", "DSCP 46 EF with ECN ECT(1)"),
        ("300", "out of range 0-63"),
        ("xyz", "unknown DSCP name 'xyz'"),
        ("efx", "did you mean EF?"),
        ("", "empty"),
        ("-1", "DSCP -1 is out of range 0-63"),
    ],
)
def test_bad_dscp_text_gives_a_helpful_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_dscp(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "tos"),
    [
        ("0x48", 0x48),
        ("b8", 0xB8),
        ("B8", 0xB8),
        ("184", 184),
        ("0b10111000", 184),
        ("Minimize-Delay", 0x10),
        ("maximize-throughput", 0x08),
        ("Maximize-Reliability", 0x04),
        ("Minimize-Cost", 0x02),
        ("Normal-Service", 0),
        ("255", 255),
    ],
)
def test_tos_parses_decimal_hex_and_iptables_names(text: str, tos: int) -> None:
    assert parse_tos(text) == tos


def test_tos_bare_digits_are_decimal_unless_hex_is_asked_for() -> None:
    assert parse_tos("48") == 48
    assert parse_tos("48", hex_digits=True) == 0x48
    assert parse_tos("b8", hex_digits=True) == 0xB8
    assert parse_tos("0x48", hex_digits=True) == 0x48
    assert parse_tos("0b1", hex_digits=True) == 1  # a prefix wins over bare hex
    assert parse_tos("0b") == 0x0B
    assert parse_tos("Minimize-Delay", hex_digits=True) == 0x10
    with pytest.raises(ValueError, match="ToS byte 184 is out of range"):
        parse_tos("184", hex_digits=True)  # 0x184
    with pytest.raises(ValueError, match="ToS byte abc is out of range"):
        parse_tos("abc")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0x100", "out of range 0-255"),
        ("256", "out of range 0-255"),
        ("zz", "not a ToS byte"),
        ("Minimize-Cots", "did you mean Minimize-Cost"),
        ("", "empty"),
    ],
)
def test_bad_tos_text_gives_a_helpful_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_tos(text)
    assert fragment in str(caught.value)


def test_ecn_names_follow_rfc_3168() -> None:
    assert [ecn_name(e) for e in range(4)] == ["Not-ECT", "ECT(1)", "ECT(0)", "CE"]
    for ecn, spellings in enumerate(
        [("Not-ECT", "not-ect", "0"), ("ECT(1)", "ect1", "0b01"), ("ect(0)", "ECT0"), ("CE", "3")]
    ):
        for spelling in spellings:
            assert parse_ecn(spelling) == ecn
    with pytest.raises(ValueError, match="out of range 0-3"):
        parse_ecn("4")
    with pytest.raises(ValueError, match="unknown ECN"):
        parse_ecn("ect2")


def test_precedence_names_follow_rfc_791() -> None:
    assert [precedence_name(p) for p in range(8)] == [
        "Routine",
        "Priority",
        "Immediate",
        "Flash",
        "Flash Override",
        "CRITIC/ECP",
        "Internetwork Control",
        "Network Control",
    ]


def test_legacy_tos_bits_have_their_iptables_names() -> None:
    assert {bit.name: bit.value for bit in LEGACY_TOS_BITS} == {
        "Minimize-Delay": 0x10,
        "Maximize-Throughput": 0x08,
        "Maximize-Reliability": 0x04,
        "Minimize-Cost": 0x02,
    }
    assert legacy_tos_names(0) == ("Normal-Service",)
    assert legacy_tos_names(0xB8) == ("Minimize-Delay", "Maximize-Throughput")
    assert legacy_tos_names(0xC2) == ("Minimize-Cost",)
    assert tos_to_ecn(parse_tos("Minimize-Cost")) == 2  # the ECN side effect, ECT(0)
    assert "ECN" in next(b for b in LEGACY_TOS_BITS if b.value == 2).meaning


def test_rfc_4594_service_classes() -> None:
    classes = {d: service_class(d) for d in ALL_DSCP if service_class(d)}
    expected = {
        48: "Network Control",
        46: "Telephony",
        40: "Signaling",
        32: "Real-Time Interactive",
    }
    expected |= {24: "Broadcast Video", 16: "OAM", 0: "Standard", 8: "Low-Priority Data"}
    expected |= {1: "Low-Priority Data", 44: "Capacity-Admitted Telephony"}
    for drop in (1, 2, 3):
        expected[32 + 2 * drop] = "Multimedia Conferencing"
        expected[24 + 2 * drop] = "Multimedia Streaming"
        expected[16 + 2 * drop] = "Low-Latency Data"
        expected[8 + 2 * drop] = "High-Throughput Data"
    assert classes == expected
    assert service_class(56) is None  # CS7 is reserved


def test_pcp_names_and_default_map() -> None:
    assert [pcp_name(p) for p in range(8)] == ["BE", "BK", "EE", "CA", "VI", "VO", "IC", "NC"]
    legacy = [pcp_info(p).legacy_acronym for p in range(8)]
    assert legacy == ["BE", "BK", "-", "EE", "CL", "VI", "VO", "NC"]
    assert sorted(PCP_TABLE, key=lambda p: p.rank)[0].pcp == 1  # background ranks below BE
    assert [default_pcp(d) for d in ALL_DSCP] == [d >> 3 for d in ALL_DSCP]
    assert list(DEFAULT_DSCP_TO_PCP) == [d >> 3 for d in ALL_DSCP]
    assert default_pcp(46) == 5


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (dscp_name, 64),
        (dscp_name, -1),
        (tos_to_dscp, 256),
        (ecn_name, 4),
        (precedence_name, 8),
        (pcp_name, 8),
        (default_pcp, 64),
        (describe_tos, 256),
    ],
)
def test_out_of_range_values_raise_value_error(call: object, arg: int) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match="out of range"):
        call(arg)


def test_non_integers_raise_value_error() -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        dscp_name("46")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be an integer"):
        dscp_to_tos(True)


def test_parse_number_forms() -> None:
    assert parse_number("0x2e") == 46
    assert parse_number("0o56") == 46
    assert parse_number("1_0") == 10
    assert parse_number("ef") is None
    assert parse_number("0x") is None
    assert parse_number("1__0") is None
    assert parse_number("0x_") is None


def test_as_dict_carries_the_json_keys() -> None:
    record = describe_tos(185).as_dict()
    assert record["dscp"] == 46
    assert record["tos"] == 185
    assert record["tos_hex"] == "0xb9"
    assert record["name"] == "EF"
    assert record["precedence"] == 5
    assert record["ecn"] == 1
    assert record["ecn_name"] == "ECT(1)"
    assert record["service_class"] == "Telephony"
    assert record["pcp"] == 5
    assert record["phb"] == "EF"
