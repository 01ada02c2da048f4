//! Config parsing and validation, table by table.

use super::*;
use vtep_common::VXLAN_PORT;

const GOOD: &str = r#"
[underlay]
interface = "eth0"
local = "198.18.0.1"
port = 4789
srcport = [49152, 65535]
ttl = 64
udp_checksum = false
[[vni]]
id = 100
ports = ["veth-w1"]
flood = ["198.18.0.2"]
learning = true
ageing = 300
maxaddress = 0
[[fdb]]
mac = "02:00:00:00:01:02"
vni = 100
dst = "198.18.0.2"
"#;

#[test]
fn the_documented_example_parses() {
    let c: Config = GOOD.parse().expect("example config");
    assert_eq!(c.underlay.interface, "eth0");
    assert_eq!(c.underlay.port, 4789);
    assert_eq!(c.vnis[0].id, 100);
    assert_eq!(
        c.vnis[0].flood,
        vec!["198.18.0.2".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        c.fdb[0].target,
        FdbTarget::Remote("198.18.0.2".parse().unwrap())
    );
}

#[test]
fn engine_is_chosen_by_name() {
    let c: Config = format!("engine = \"afxdp\"\n[afxdp]\nbusy_poll = true\n{GOOD}")
        .parse()
        .unwrap();
    assert_eq!(c.engine, EngineKind::Afxdp);
    assert!(c.busy_poll);
    let bad = format!("engine = \"dpdk\"\n{GOOD}")
        .parse::<Config>()
        .unwrap_err();
    assert!(bad[0].reason.contains("dpdk"), "{bad}");
    assert_eq!(GOOD.parse::<Config>().unwrap().engine, EngineKind::Xdp);
}

#[test]
fn defaults_apply() {
    let c: Config = "[underlay]\ninterface = \"eth0\"\nlocal = \"198.18.0.1\"\n[[vni]]\nid = 7\n"
        .parse()
        .unwrap();
    assert_eq!(c.underlay.port, VXLAN_PORT);
    assert_eq!(c.underlay.srcport, DEFAULT_SRCPORT);
    assert_eq!(c.underlay.ttl, TTL_AUTO);
    assert_eq!(c.underlay.tos, Tos::Fixed(0));
    assert_eq!(c.underlay.flowlabel, FlowLabel::Hash);
    assert!(!c.underlay.udp6_zero_csum_tx && !c.underlay.udp6_zero_csum_rx);
    assert_eq!(c.vnis[0], VniConfig::new(7));
}

/// Each bad config is refused with an error naming the field.
#[test]
fn bad_configs_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("id = 100", "id = 0", "vni[0].id"),
        ("id = 100", "id = 16777216", "vni[0].id"),
        ("port = 4789", "port = 70000", "underlay.port"),
        (
            "srcport = [49152, 65535]",
            "srcport = [6000, 5000]",
            "underlay.srcport",
        ),
        (
            "srcport = [49152, 65535]",
            "srcport = [1]",
            "underlay.srcport",
        ),
        ("ttl = 64", "ttl = 0", "underlay.ttl"),
        (
            "local = \"198.18.0.1\"",
            "local = \"198.18.0.300\"",
            "underlay.local",
        ),
        (
            "local = \"198.18.0.1\"",
            "local = \"ff05::100\"",
            "underlay.local",
        ),
        ("local = \"198.18.0.1\"", "local = []", "underlay.local"),
        (
            "local = \"198.18.0.1\"",
            "local = [\"198.18.0.1\", \"198.18.0.9\"]",
            "underlay.local[1]",
        ),
        ("ttl = 64", "ttl = \"inherit\"", "underlay.ttl"),
        ("ttl = 64", "ttl = 64\ntos = 256", "underlay.tos"),
        ("ttl = 64", "ttl = 64\ntos = \"copy\"", "underlay.tos"),
        ("ttl = 64", "ttl = 64\nflowlabel = 7", "underlay.flowlabel"),
        (
            "ttl = 64",
            "ttl = 64\nudp6_zero_csum_rx = true",
            "underlay.udp6_zero_csum_rx",
        ),
        ("learning = true", "group = \"198.18.0.9\"", "vni[0].group"),
        ("learning = true", "group = \"ff05::100\"", "vni[0].group"),
        ("learning = true", "group = \"239.1.1\"", "vni[0].group"),
        (
            "flood = [\"198.18.0.2\"]",
            "flood = [\"2001:db8::3\"]",
            "vni[0].flood[0]",
        ),
        (
            "dst = \"198.18.0.2\"",
            "dst = \"2001:db8::2\"",
            "fdb[0].dst",
        ),
        (
            "flood = [\"198.18.0.2\"]",
            "flood = [\"nope\"]",
            "vni[0].flood[0]",
        ),
        (
            "flood = [\"198.18.0.2\"]",
            "flood = [\"198.18.0.1\"]",
            "vni[0].flood[0]",
        ),
        (
            "mac = \"02:00:00:00:01:02\"",
            "mac = \"02:00:00:00:01\"",
            "fdb[0].mac",
        ),
        (
            "mac = \"02:00:00:00:01:02\"",
            "mac = \"01:00:5e:00:00:01\"",
            "fdb[0].mac",
        ),
        ("vni = 100\ndst", "vni = 200\ndst", "fdb[0].vni"),
        (
            "dst = \"198.18.0.2\"",
            "dst = \"198.18.0.2\"\nport = \"veth-w1\"",
            "fdb[0].dst",
        ),
        ("dst = \"198.18.0.2\"", "port = \"other\"", "fdb[0].port"),
        (
            "ports = [\"veth-w1\"]",
            "ports = [\"eth0\"]",
            "vni[0].ports[0]",
        ),
        (
            "ports = [\"veth-w1\"]",
            "ports = [\"a-name-that-is-too-long\"]",
            "vni[0].ports[0]",
        ),
        (
            "udp_checksum = false",
            "udp_checksum = 1",
            "underlay.udp_checksum",
        ),
        ("maxaddress = 0", "maxaddress = -1", "vni[0].maxaddress"),
        ("learning = true", "learning = \"yes\"", "vni[0].learning"),
        ("vni = 100", "vni = \"100\"", "fdb[0].vni"),
    ];
    for (from, to, field) in cases {
        assert!(GOOD.contains(from), "fixture lacks {from}");
        let text = GOOD.replacen(from, to, 1);
        let err = text
            .parse::<Config>()
            .expect_err(&format!("{to} must be refused"));
        assert_eq!(&err[0].field, field, "{to}: got {err}");
        assert_eq!(err.len(), 1, "{to}: one mistake, one error: {err}");
    }
}

#[test]
fn duplicate_vni_and_shared_port_are_refused() {
    let dup = format!("{GOOD}\n[[vni]]\nid = 100\n");
    assert_eq!(dup.parse::<Config>().unwrap_err()[0].field, "vni[1].id");
    let shared = format!("{GOOD}\n[[vni]]\nid = 200\nports = [\"veth-w1\"]\n");
    assert_eq!(
        shared.parse::<Config>().unwrap_err()[0].field,
        "vni[1].ports[0]"
    );
}

#[test]
fn unknown_keys_and_types_are_refused() {
    let typo = GOOD.replace("ageing = 300", "agening = 300");
    let err = typo.parse::<Config>().unwrap_err();
    assert!(err[0].reason.contains("agening"), "{err}");
    let ty = GOOD.replace("learning = true", "learning = \"yes\"");
    assert!(ty.parse::<Config>().is_err());
}

const FOLLOW: &str = "[underlay]\ninterface = \"eth0\"\n[follow]\ndevices = [\"vxlan100\"]\n";

#[test]
fn follow_takes_devices_or_all() {
    let c: Config = FOLLOW.parse().expect("follow config");
    let f = c.follow.expect("[follow]");
    assert_eq!(f.devices, vec!["vxlan100".to_owned()]);
    assert!(!f.all && f.wants("vxlan100") && !f.wants("vxlan200"));
    // local and port left out: the daemon takes them from the device.
    assert!(f.local_from_link && f.port_from_link);
    assert!(c.vnis.is_empty());

    let all: Config = "[underlay]\ninterface = \"eth0\"\nlocal = \"198.18.0.1\"\nport = 8472\n\
                           [follow]\nall = true\n"
        .parse()
        .expect("follow all");
    let f = all.follow.expect("[follow]");
    assert!(f.all && f.wants("flannel.1"));
    assert!(!f.local_from_link && !f.port_from_link);
    assert_eq!(all.underlay.port, 8472);
    assert!(GOOD.parse::<Config>().unwrap().follow.is_none());
}

/// Each bad `[follow]` is refused with an error naming the field.
#[test]
fn bad_follow_configs_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("devices = []", "follow.devices"),
        ("all = false", "follow.devices"),
        ("all = true\ndevices = [\"vxlan100\"]", "follow.all"),
        (
            "devices = [\"vxlan100\", \"vxlan100\"]",
            "follow.devices[1]",
        ),
        ("devices = [\"eth0\"]", "follow.devices[0]"),
        (
            "devices = [\"a-name-that-is-too-long\"]",
            "follow.devices[0]",
        ),
        ("devices = [\"veth-w1\"]", "follow.devices[0]"),
        ("all = true\nrcvbuf = 100", "follow.rcvbuf"),
    ];
    for (follow, field) in cases {
        let err = format!("{GOOD}\n[follow]\n{follow}\n")
            .parse::<Config>()
            .expect_err(&format!("{follow} must be refused"));
        assert_eq!(&err[0].field, field, "{follow}: got {err}");
    }
    let unknown = format!("{FOLLOW}device = \"x\"\n")
        .parse::<Config>()
        .unwrap_err();
    assert!(unknown[0].reason.contains("device"), "{unknown}");
    // Without [follow], underlay.local is required.
    let no_local = GOOD.replace("local = \"198.18.0.1\"\n", "");
    assert_eq!(
        no_local.parse::<Config>().unwrap_err()[0].field,
        "underlay.local"
    );
}

/// A config with several mistakes names every one, in the order of the
/// text, one line each.
#[test]
fn every_mistake_is_reported_at_once() {
    let text = GOOD
        .replacen("port = 4789", "port = 70000", 1)
        .replacen("flood = [\"198.18.0.2\"]", "flood = [\"2001:db8::2\"]", 1)
        .replacen("mac = \"02:00:00:00:01:02\"", "mac = \"02:00:00:00:01\"", 1);
    let err = text.parse::<Config>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "3 problems:\n  \
         underlay.port: 70000 is outside 1..=65535\n  \
         vni[0].flood[0]: 2001:db8::2 is IPv6 but underlay.local has no IPv6 address\n  \
         fdb[0].mac: \"02:00:00:00:01\" is not a MAC address (expected six hex bytes, like 02:00:00:00:01:02)"
    );
    // The interfaces it names, for the checks against the system.
    assert_eq!(
        err.interfaces,
        [
            ("underlay.interface".to_owned(), "eth0".to_owned()),
            ("vni[0].ports[0]".to_owned(), "veth-w1".to_owned())
        ]
    );
}

#[test]
fn one_mistake_reads_as_before() {
    let err = GOOD
        .replacen("ttl = 64", "ttl = 0", 1)
        .parse::<Config>()
        .unwrap_err();
    assert_eq!(err.to_string(), "underlay.ttl: 0 is outside 1..=255");
}

/// A TOML syntax error says its line once.
#[test]
fn syntax_errors_name_the_line_once() {
    let err = "[underlay\n".parse::<Config>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: invalid table header\nexpected `.`, `]`"
    );
    let typed = GOOD
        .replacen("ttl = 64", "ttl = \"x\"", 1)
        .parse::<Config>()
        .unwrap_err();
    assert_eq!(
        typed.to_string(),
        "underlay.ttl: \"x\": give 1..=255, or \"auto\" (64 to VTEPs, 1 to groups)"
    );
    let typed = GOOD
        .replacen("udp_checksum = false", "udp_checksum = 1", 1)
        .parse::<Config>()
        .unwrap_err();
    assert_eq!(
        typed.to_string(),
        "underlay.udp_checksum: line 8: invalid type: integer `1`, expected a boolean"
    );
}

#[test]
fn fdb_capacity_is_a_bounded_setting() {
    let cfg: Config = GOOD.parse().unwrap();
    assert_eq!(cfg.capacity.fdb, vtep_common::FDB_CAPACITY, "the default");
    let million: Config = format!("{GOOD}\n[capacity]\nfdb = 1048576\n")
        .parse()
        .unwrap();
    assert_eq!(million.capacity.fdb, 1 << 20);
    for bad in ["0", "1023", "16777217", "\"big\""] {
        let err = format!("{GOOD}\n[capacity]\nfdb = {bad}\n")
            .parse::<Config>()
            .expect_err(bad);
        assert_eq!(err[0].field, "capacity.fdb", "{bad}: {err}");
    }
    // maxaddress is bounded by the capacity the config sets.
    let over =
        format!("{GOOD}\n[capacity]\nfdb = 2048\n").replace("maxaddress = 0", "maxaddress = 4096");
    let err = over.parse::<Config>().unwrap_err();
    assert_eq!(err[0].field, "vni[0].maxaddress", "{err}");
}

#[test]
fn metrics_listen_is_off_by_default_and_checked() {
    let cfg: Config = GOOD.parse().unwrap();
    assert_eq!(cfg.metrics, None, "off by default");
    let on: Config = format!("{GOOD}\n[metrics]\nlisten = \"198.18.0.1:9100\"\n")
        .parse()
        .unwrap();
    assert_eq!(
        on.metrics.map(|m| m.listen),
        Some("198.18.0.1:9100".parse().unwrap())
    );
    let v6: Config = format!("{GOOD}\n[metrics]\nlisten = \"[::1]:9100\"\n")
        .parse()
        .unwrap();
    assert_eq!(
        v6.metrics.map(|m| m.listen),
        Some("[::1]:9100".parse().unwrap())
    );
    for bad in [
        "listen = \"198.18.0.1\"",
        "listen = \"198.18.0.1:0\"",
        "listen = \"198.18.0.1:70000\"",
        "listen = \"localhost:9100\"",
        "listen = 9100",
        "",
    ] {
        let err = format!("{GOOD}\n[metrics]\n{bad}\n")
            .parse::<Config>()
            .expect_err(bad);
        assert_eq!(err[0].field, "metrics.listen", "{bad}: {err}");
    }
    // Reported together with the config's other problems.
    let two = format!("{GOOD}\n[metrics]\nlisten = \"x\"\n").replace("ttl = 64", "ttl = 300");
    let err = two.parse::<Config>().unwrap_err();
    let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"metrics.listen"), "{err}");
    assert!(fields.contains(&"underlay.ttl"), "{err}");
}

#[test]
fn metrics_flag_value_reads_as_the_config_does() {
    assert_eq!(
        MetricsConfig::parse_listen("127.0.0.1:9100"),
        Ok("127.0.0.1:9100".parse().unwrap())
    );
    let err = MetricsConfig::parse_listen("9100").unwrap_err();
    assert!(err.contains("ADDR:PORT"), "{err}");
}

/// What `cargo xtask fuzz-parsers` checks of the config, as fixed cases
/// (fuzz/corpus/config has them too): nesting deeper than the TOML
/// parser's recursion limit, and numbers past every integer type, are
/// errors naming the line, not a stack overflow or a wrap.
#[test]
fn deep_nesting_and_huge_numbers_are_errors() {
    let head = "[underlay]\ninterface = \"eth0\"\nlocal = \"198.18.0.1\"\n";
    for deep in [
        format!("{head}x = {}{}", "[".repeat(5000), "]".repeat(5000)),
        format!("{head}x = {}1{}", "{a=".repeat(3000), "}".repeat(3000)),
        format!("[{}b]", "a.".repeat(3000)),
    ] {
        let e = deep.parse::<Config>().unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
    }
    for (line, field) in [
        ("port = 99999999999999999999", "underlay.port"),
        ("ttl = -9223372036854775809", "underlay.ttl"),
        ("ttl = 1e400", "underlay.ttl"),
    ] {
        let e = format!("{head}{line}\n").parse::<Config>().unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
        assert_eq!(e[0].field, field, "{e}");
        assert!(e[0].reason.starts_with("line 4: "), "{e}");
    }
    let e = format!("{head}ttl = -9223372036854775808\nport = 9223372036854775807\n")
        .parse::<Config>()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "2 problems:\n  underlay.port: 9223372036854775807 is outside 1..=65535\n  \
         underlay.ttl: -9223372036854775808 is outside 1..=255"
    );
}

/// The underlay of either family, or both: remote VTEPs and groups are
/// checked against the local address of their family.
#[test]
fn an_underlay_of_either_family_or_both() {
    let v6 = GOOD
        .replace("198.18.0.1", "2001:db8::1")
        .replace("198.18.0.2", "2001:db8::2");
    let c: Config = v6.parse().expect("an IPv6 underlay");
    assert_eq!(c.underlay.local.v6, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(c.underlay.local.v4, None);
    assert_eq!(c.vnis[0].flood, ["2001:db8::2".parse::<IpAddr>().unwrap()]);

    let dual = GOOD
        .replace(
            "local = \"198.18.0.1\"",
            "local = [\"198.18.0.1\", \"2001:db8::1\"]",
        )
        .replace(
            "flood = [\"198.18.0.2\"]",
            "flood = [\"198.18.0.2\", \"2001:db8::3\"]",
        );
    let c: Config = dual.parse().expect("a dual-stack underlay");
    let l = c.underlay.local;
    assert_eq!(l.to_string(), "198.18.0.1, 2001:db8::1");
    assert_eq!(
        l.for_remote("2001:db8::3".parse().unwrap()),
        Some("2001:db8::1".parse().unwrap())
    );
    assert!(l.contains("2001:db8::1".parse().unwrap()));
    assert_eq!(c.vnis[0].flood.len(), 2);

    // A VTEP's own IPv6 address is no flood-list member nor FDB dst.
    let own = dual.replace("\"2001:db8::3\"]", "\"2001:db8::1\"]");
    let err = own.parse::<Config>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "vni[0].flood[1]: 2001:db8::1 is this VTEP (underlay.local)"
    );

    // The messages, word for word.
    let cases = [
        (
            v6.replace("flood = [\"2001:db8::2\"]", "flood = [\"198.18.0.2\"]"),
            "vni[0].flood[0]: 198.18.0.2 is IPv4 but underlay.local has no IPv4 address",
        ),
        (
            GOOD.replace("flood = [\"198.18.0.2\"]", "flood = [\"2001:db8::3\"]"),
            "vni[0].flood[0]: 2001:db8::3 is IPv6 but underlay.local has no IPv6 address",
        ),
        (
            GOOD.replace("dst = \"198.18.0.2\"", "dst = \"2001:db8::2\""),
            "fdb[0].dst: 2001:db8::2 is IPv6 but underlay.local has no IPv6 address",
        ),
        (
            GOOD.replace(
                "local = \"198.18.0.1\"",
                "local = [\"2001:db8::1\", \"2001:db8::2\"]",
            )
            .replace("198.18.0.2", "2001:db8::5"),
            "underlay.local[1]: 2001:db8::2: underlay.local has an IPv6 address already (one \
             of each family at most)",
        ),
        (
            GOOD.replace(
                "local = \"198.18.0.1\"",
                "local = [\"198.18.0.1\", \"2001:db8::1\", \"2001:db8::2\"]",
            ),
            "underlay.local: 3 addresses; give one, or one IPv4 and one IPv6 address",
        ),
        (
            GOOD.replace("local = \"198.18.0.1\"", "local = \"::\""),
            "underlay.local: :: is not a unicast address",
        ),
        (
            GOOD.replace("learning = true", "group = \"ff05::100\""),
            "vni[0].group: ff05::100 is IPv6 but underlay.local has no IPv6 address",
        ),
        (
            GOOD.replace("learning = true", "group = \"198.18.0.9\""),
            "vni[0].group: 198.18.0.9 is not a multicast address",
        ),
        (
            GOOD.replace("ttl = 64", "flowlabel = 5"),
            "underlay.flowlabel: applies to an IPv6 underlay, and underlay.local has no IPv6 \
             address",
        ),
        (
            v6.replace("ttl = 64", "flowlabel = 1048576"),
            "underlay.flowlabel: 1048576 is outside 0..=1048575",
        ),
        (
            v6.replace("ttl = 64", "flowlabel = \"random\""),
            "underlay.flowlabel: \"random\": give \"hash\" (the inner flow's), \"inherit\" \
             (the inner IPv6 packet's) or a label 0..=1048575",
        ),
        (
            GOOD.replace("ttl = 64", "tos = -1"),
            "underlay.tos: -1 is outside 0..=255",
        ),
        (
            GOOD.replace("ttl = 64", "tos = \"copy\""),
            "underlay.tos: \"copy\": give 0..=255, or \"inherit\" (the inner packet's DS field)",
        ),
        (
            GOOD.replace("ttl = 64", "udp6_zero_csum_tx = true"),
            "underlay.udp6_zero_csum_tx: applies to an IPv6 underlay, and underlay.local has no \
             IPv6 address",
        ),
    ];
    for (text, want) in cases {
        let err = text.parse::<Config>().expect_err(want);
        assert_eq!(err.to_string(), want);
    }
}

/// `ttl`, `tos`, `flowlabel` and the zero-checksum switches, as the kernel
/// vxlan device's options.
#[test]
fn outer_header_settings() {
    let v6 = GOOD
        .replace("198.18.0.1", "2001:db8::1")
        .replace("198.18.0.2", "2001:db8::2");
    let with = |lines: &str| -> UnderlayConfig {
        v6.replace("ttl = 64", lines)
            .parse::<Config>()
            .unwrap_or_else(|e| panic!("{lines}: {e}"))
            .underlay
    };
    assert_eq!(with("ttl = \"auto\"").ttl, TTL_AUTO);
    assert_eq!(with("ttl = 1").ttl, 1);
    assert_eq!(with("tos = 184").tos, Tos::Fixed(184));
    assert_eq!(with("tos = \"inherit\"").tos, Tos::Inherit);
    assert_eq!(with("flowlabel = \"hash\"").flowlabel, FlowLabel::Hash);
    assert_eq!(
        with("flowlabel = \"inherit\"").flowlabel,
        FlowLabel::Inherit
    );
    assert_eq!(
        with("flowlabel = 1048575").flowlabel,
        FlowLabel::Fixed(FlowLabel::MAX)
    );
    let z = with("udp6_zero_csum_tx = true\nudp6_zero_csum_rx = true");
    assert!(z.udp6_zero_csum_tx && z.udp6_zero_csum_rx);
}

/// A VNI's multicast group: either family, each needing a local address
/// of its family; two VNIs may share one.
#[test]
fn vni_groups() {
    let dual = GOOD.replace(
        "local = \"198.18.0.1\"",
        "local = [\"198.18.0.1\", \"2001:db8::1\"]",
    );
    let text = format!(
        "{}\n[[vni]]\nid = 200\ngroup = \"ff05::100\"\n[[vni]]\nid = 300\ngroup = \"239.1.1.1\"\n",
        dual.replace("learning = true", "group = \"239.1.1.1\"")
    );
    let c: Config = text.parse().expect("groups");
    let groups: Vec<Option<IpAddr>> = c.vnis.iter().map(|v| v.group).collect();
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(groups, [ip("239.1.1.1"), ip("ff05::100"), ip("239.1.1.1")]);
    assert_eq!(GOOD.parse::<Config>().unwrap().vnis[0].group, None);
    assert_eq!(check_group("group", "ff02::1").map(Some), Ok(ip("ff02::1")));
    assert_eq!(
        check_group("group", "2001:db8::1").unwrap_err().to_string(),
        "group: 2001:db8::1 is not a multicast address"
    );
}

/// With `[follow]` and no `underlay.local`, the local addresses come from
/// the followed devices: remote addresses are not checked against them
/// yet.
#[test]
fn families_are_not_checked_before_the_local_address_is_known() {
    let text = "[underlay]\ninterface = \"eth0\"\n[follow]\nall = true\n\
                [[vni]]\nid = 7\nflood = [\"2001:db8::2\"]\ngroup = \"239.1.1.1\"\n";
    let c: Config = text.parse().expect("local from the link");
    assert!(c.underlay.local.is_empty());
}
