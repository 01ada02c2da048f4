//! The walker on datagrams built with netlink-packet-route, as the kernel
//! sends them: dumps, acks and errors, events, and what is cut short.

use netlink_packet_core::{DoneMessage, NLM_F_MULTIPART};
use netlink_packet_route::{
    AddressFamily,
    link::{LinkAttribute, LinkMessage},
    neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage},
};

use super::*;

/// One serialized message with `flags`.
fn bytes(flags: u16, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, payload);
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

fn link(index: u32, name: &str) -> NetlinkPayload<RouteNetlinkMessage> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = vec![LinkAttribute::IfName(name.into())];
    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m))
}

fn fdb_event() -> NetlinkPayload<RouteNetlinkMessage> {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = 10;
    m.header.flags = NeighbourFlags::Own;
    m.attributes = vec![NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 1, 1])];
    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m))
}

fn done() -> Vec<u8> {
    bytes(
        NLM_F_MULTIPART,
        NetlinkPayload::Done(DoneMessage::default()),
    )
}

fn error(code: i32) -> Vec<u8> {
    let mut e = ErrorMessage::default();
    e.code = std::num::NonZeroI32::new(code);
    // The request's header, as the kernel echoes it.
    e.header = vec![0; NLMSG_HDRLEN];
    bytes(0, NetlinkPayload::Error(e))
}

/// The walk's outcome and the names of the links handed on.
fn names(data: &[u8]) -> (io::Result<Reply>, Vec<String>) {
    let mut out = Vec::new();
    let r = walk(data, |m| match m.expect("decodes") {
        RouteNetlinkMessage::NewLink(l) => out.push(super::parse_link(&l).name),
        other => out.push(format!("{other:?}")),
    });
    (r, out)
}

#[test]
fn alignment_is_to_four_bytes() {
    assert_eq!(NLMSG_HDRLEN, 16);
    assert_eq!(
        [0, 1, 4, 17, 19, 20].map(nlmsg_align),
        [0, 4, 4, 20, 20, 20]
    );
}

#[test]
fn a_dump_over_two_datagrams_ends_at_done() {
    let first = [
        bytes(NLM_F_MULTIPART, link(1, "lo")),
        bytes(NLM_F_MULTIPART, link(2, "eth0")),
    ]
    .concat();
    let (r, got) = names(&first);
    assert_eq!(r.expect("walks"), Reply::Continues);
    assert_eq!(got, ["lo", "eth0"]);

    // What follows DONE in the datagram is not read.
    let last = [
        bytes(NLM_F_MULTIPART, link(3, "br0")),
        done(),
        bytes(NLM_F_MULTIPART, link(4, "late")),
    ]
    .concat();
    let (r, got) = names(&last);
    assert_eq!(r.expect("walks"), Reply::Done);
    assert_eq!(got, ["br0"]);
}

#[test]
fn a_reply_that_is_not_multipart_is_complete() {
    let (r, got) = names(&bytes(0, link(1, "lo")));
    assert_eq!(r.expect("walks"), Reply::Done);
    assert_eq!(got, ["lo"]);
}

#[test]
fn an_ack_ends_the_reply_and_an_errno_is_the_error() {
    assert_eq!(names(&error(0)).0.expect("an ack"), Reply::Done);
    let e = names(&error(-libc::EEXIST)).0.expect_err("a refusal");
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    // Messages before the error are handed on.
    let data = [bytes(NLM_F_MULTIPART, link(1, "lo")), error(-libc::EPERM)].concat();
    let (r, got) = names(&data);
    assert_eq!(r.expect_err("a refusal").raw_os_error(), Some(libc::EPERM));
    assert_eq!(got, ["lo"]);
}

#[test]
fn two_events_in_one_datagram_are_both_read() {
    let data = [bytes(0, fdb_event()), bytes(0, link(5, "vxlan100"))].concat();
    let got = messages(&data);
    assert_eq!(got.len(), 2);
    assert!(matches!(got[0], RouteNetlinkMessage::NewNeighbour(_)));
    assert!(matches!(got[1], RouteNetlinkMessage::NewLink(_)));
}

#[test]
fn a_datagram_cut_short_is_an_error_after_what_came_whole() {
    let whole = [bytes(0, fdb_event()), bytes(0, link(5, "vxlan100"))].concat();
    let first = bytes(0, fdb_event()).len();
    // Cut inside the second message's header, and inside its payload.
    for cut in [first + 7, whole.len() - 3] {
        let mut n = 0;
        let r = walk(&whole[..cut], |m| {
            m.expect("decodes");
            n += 1;
        });
        assert_eq!(
            r.expect_err("cut short").kind(),
            io::ErrorKind::InvalidData,
            "cut at {cut}"
        );
        assert_eq!(n, 1, "cut at {cut}");
        // The event socket keeps what came whole.
        assert_eq!(messages(&whole[..cut]).len(), 1);
    }
}

#[test]
fn a_length_shorter_than_the_header_is_an_error_not_a_loop() {
    for len in [0u32, 4, 15] {
        let mut data = bytes(0, link(1, "lo"));
        data[..4].copy_from_slice(&len.to_ne_bytes());
        let (r, got) = names(&data);
        assert_eq!(r.expect_err("malformed").kind(), io::ErrorKind::InvalidData);
        assert!(got.is_empty());
    }
}

#[test]
fn messages_are_found_at_aligned_offsets() {
    // A NOOP of 17 bytes (header and one byte), padded to 20, then a link.
    let mut noop = vec![0u8; NLMSG_HDRLEN + 1];
    noop[..4].copy_from_slice(&(NLMSG_HDRLEN as u32 + 1).to_ne_bytes());
    noop[4..6].copy_from_slice(&NLMSG_NOOP.to_ne_bytes());
    noop.resize(nlmsg_align(noop.len()), 0);
    let data = [noop, bytes(0, link(1, "lo"))].concat();
    let (r, got) = names(&data);
    assert_eq!(r.expect("walks"), Reply::Done);
    assert_eq!(got, ["lo"]);
}

#[test]
fn messages_that_do_not_decode_are_handed_on_as_errors() {
    // An RTM_NEWLINK whose payload is shorter than its ifinfomsg.
    let mut bad = bytes(0, link(1, "lo"));
    let len = NLMSG_HDRLEN + 4;
    bad.truncate(len);
    bad[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    let data = [bad, bytes(0, fdb_event())].concat();
    let mut seen = Vec::new();
    walk(&data, |m| seen.push(m.is_ok())).expect("walks");
    assert_eq!(seen, [false, true]);
    // The event socket skips it.
    assert_eq!(messages(&data).len(), 1);
}

/// The FDB records of a datagram; the walk's outcome.
fn fdb_records(data: &[u8]) -> (Reply, Vec<FdbRecord>) {
    let mut out = Vec::new();
    let r = walk(data, |m| match m.expect("decodes") {
        RouteNetlinkMessage::NewNeighbour(n) => out.extend(parse_fdb(&n)),
        other => panic!("not a neighbour message: {other:?}"),
    })
    .expect("walks");
    (r, out)
}

#[test]
fn the_kernels_bridge_fdb_dump_is_read_whole() {
    use std::net::{IpAddr, Ipv4Addr};

    let (r, recs) = fdb_records(&fixtures::bytes(fixtures::DUMP_FIRST));
    assert_eq!(r, Reply::Continues);
    assert_eq!(recs.len(), 8);
    assert_eq!(
        fdb_records(&fixtures::bytes(fixtures::DUMP_LAST)),
        (Reply::Done, vec![])
    );
    // The bridge's own entries, and vxlan100's address on the bridge.
    assert!(
        recs[..5]
            .iter()
            .all(|r| r.ifindex == 2 && r.own && r.permanent)
    );
    assert!(recs[5].master && recs[5].permanent && recs[5].bridge == Some(2));
    let vtep = |d| Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, d)));
    assert_eq!(
        (recs[6].mac, recs[6].own, recs[6].dst),
        ([2, 0, 0, 0, 1, 1], true, vtep(3))
    );
    assert_eq!(
        (recs[7].mac, recs[7].own, recs[7].dst),
        ([0; 6], true, vtep(2))
    );
}

#[test]
fn the_kernels_fdb_events_are_one_message_each() {
    for (hex, dst) in [(fixtures::EVENT_FLOOD, 2), (fixtures::EVENT_REMOTE, 3)] {
        let data = fixtures::bytes(hex);
        let (r, recs) = fdb_records(&data);
        assert_eq!(r, Reply::Done, "an event is not multipart");
        assert_eq!(recs.len(), 1);
        assert_eq!(
            recs[0].dst,
            Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                198, 18, 0, dst
            )))
        );
        assert_eq!(messages(&data).len(), 1);
    }
}

/// The route messages of a captured reply.
fn routes(data: &[u8]) -> Vec<netlink_packet_route::route::RouteMessage> {
    let mut out = Vec::new();
    walk(data, |m| {
        if let RouteNetlinkMessage::NewRoute(r) = m.expect("decodes") {
            out.push(r);
        }
    })
    .expect("walks");
    out
}

#[test]
fn the_kernels_route_replies_give_the_next_hop() {
    use std::net::{IpAddr, Ipv4Addr};

    let ip = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let via = routes(&fixtures::bytes(fixtures::ROUTE_VIA));
    assert_eq!(
        route::route_to(&via[0], ip(10, 9, 0, 1)),
        Some(RouteTo {
            oif: 4,
            next_hop: ip(198, 18, 0, 254)
        })
    );
    let onlink = routes(&fixtures::bytes(fixtures::ROUTE_ONLINK));
    assert_eq!(
        route::route_to(&onlink[0], ip(198, 18, 0, 2)),
        Some(RouteTo {
            oif: 4,
            next_hop: ip(198, 18, 0, 2)
        })
    );
    // Without an output interface there is no answer.
    let mut no_oif = via[0].clone();
    no_oif
        .attributes
        .retain(|a| !matches!(a, netlink_packet_route::route::RouteAttribute::Oif(_)));
    assert_eq!(route::route_to(&no_oif, ip(10, 9, 0, 1)), None);
}

#[test]
fn the_kernels_neighbour_dump_gives_the_next_hops_mac() {
    use std::net::{IpAddr, Ipv4Addr};

    let mut neighbours = Vec::new();
    let r = walk(&fixtures::bytes(fixtures::NEIGH_DUMP), |m| {
        if let RouteNetlinkMessage::NewNeighbour(n) = m.expect("decodes") {
            neighbours.push(n);
        }
    })
    .expect("walks");
    assert_eq!(r, Reply::Done);
    let hop = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 254));
    let found: Vec<_> = neighbours
        .iter()
        .filter_map(|n| neigh::neighbour_lladdr(n, hop, 4))
        .collect();
    assert_eq!(found, [Some([2, 0, 0, 0, 0, 0xfe])]);
    // On another interface it is not that entry.
    assert!(
        neighbours
            .iter()
            .all(|n| neigh::neighbour_lladdr(n, hop, 5).is_none())
    );
}

/// Attribute and message lengths past what the datagram holds (seeds of
/// fuzz/corpus/netlink): refused, never read past the end.
#[test]
fn lengths_past_the_buffer_are_refused() {
    let event = fixtures::bytes(fixtures::EVENT_FLOOD);
    // The neighbour's first attribute (after the header and the ndmsg).
    let attr = NLMSG_HDRLEN + 12;
    for attr_len in [0xffu16, 2] {
        let mut data = event.clone();
        data[attr..attr + 2].copy_from_slice(&attr_len.to_ne_bytes());
        let mut seen = Vec::new();
        walk(&data, |m| seen.push(m.is_ok())).expect("walks");
        assert_eq!(seen, [false], "attribute length {attr_len}");
    }
    let mut data = event.clone();
    data[..4].copy_from_slice(&0x1000u32.to_ne_bytes());
    let (r, got) = names(&data);
    assert_eq!(
        r.expect_err("past the datagram").kind(),
        io::ErrorKind::InvalidData
    );
    assert!(got.is_empty());
}

/// Found by the fuzzer (fuzz/corpus/netlink/crash-errno-min): an error
/// message whose errno is i32::MIN, which has no absolute value.
#[test]
fn an_errno_without_an_absolute_value_is_invalid_data() {
    let e = names(&error(i32::MIN)).0.expect_err("malformed");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        names(&error(libc::EPERM)).0.unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
}

/// A VNI's group joined on the uplink: the message of `ip address add
/// 239.1.1.1/32 dev UPLINK autojoin` (and its IPv6 `/128` twin), byte for
/// byte: ifaddrmsg (family, prefix length, no header flags, universe scope,
/// ifindex), IFA_LOCAL and IFA_ADDRESS the group, IFA_FLAGS
/// IFA_F_MCAUTOJOIN (0x400, past the header's eight bits).
#[test]
fn group_membership_is_an_autojoin_address() {
    use netlink_packet_core::Emitable as _;

    fn payload(group: &str, ifindex: u32) -> String {
        let msg = group_address(group.parse().unwrap(), ifindex);
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        buf.iter().map(|b| format!("{b:02x}")).collect()
    }
    assert_eq!(
        payload("239.1.1.1", 7),
        concat!(
            "02200000", "07000000", "08000200", "ef010101", "08000100", "ef010101", "08000800",
            "00040000",
        )
    );
    assert_eq!(
        payload("ff05::100", 0x0102),
        concat!(
            "0a800000",
            "02010000",
            "14000200",
            "ff050000000000000000000000000100",
            "14000100",
            "ff050000000000000000000000000100",
            "08000800",
            "00040000",
        )
    );
}
