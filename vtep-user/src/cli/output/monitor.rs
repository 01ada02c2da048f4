//! `vtep monitor fdb`: a line per FDB event as it happens, in the manner of
//! `bridge monitor fdb`, with `vtep fdb show`'s columns and words.
//!
//! ```text
//! 02:00:00:00:0a:01 dev t1w1 vni 100 origin datapath learned
//! 02:00:00:00:0a:01 from dev t1w1 to dst 198.18.0.2 vni 100 origin datapath moved
//! Deleted 02:00:00:00:0a:01 dst 198.18.0.2 vni 100 origin datapath aged
//! 02:00:00:00:01:02 dev t1w2 vni 100 origin cli added
//! 02:00:00:00:01:02 from dev t1w2 to dst 198.18.0.3 vni 100 origin cli replaced
//! Deleted 02:00:00:00:01:02 dst 198.18.0.3 vni 100 origin cli deleted
//! Lost 12 events: this monitor read too slowly
//! ```
//!
//! As `bridge monitor` does, an entry that is gone starts with `Deleted`
//! (`"deleted":true` in JSON); the last word says what happened. With
//! `-j`, one JSON object a line (JSON Lines), the same keys as `fdb show
//! -j` plus `event` (and `from`, the place a move or a replace left);
//! with `-t`, the time of the event first, as `bridge -tshort` prints it.

use std::io::{self, Write};

use vtep_common::{
    FDB_KIND_LOCAL,
    event::{EventKind, FdbEvent},
};

use super::{FdbRow, Place, Printer};
use crate::daemon::monitor::Lost;

/// The word that ends an event's line.
fn word(kind: EventKind, ev: &FdbEvent) -> &'static str {
    match kind {
        EventKind::Learned => "learned",
        EventKind::Moved => "moved",
        EventKind::Aged => "aged",
        EventKind::Added if ev.old.kind != 0 => "replaced",
        EventKind::Added => "added",
        EventKind::Deleted => "deleted",
    }
}

/// The row `fdb show` would print for `entry` of the event's MAC (a
/// flood-list member for 00:00:00:00:00:00), without its age.
fn row(
    ev: &FdbEvent,
    entry: &vtep_common::FdbEntry,
    ifname: &mut impl FnMut(u32) -> String,
) -> FdbRow {
    let mut r = FdbRow::entry(&ev.key, entry, 0, ifname);
    r.age = None;
    r.flood = ev.key.mac == [0; 6] && entry.kind != FDB_KIND_LOCAL;
    r
}

fn place<W: Write>(p: &mut Printer<W>, place: &Place, word: &str) -> io::Result<()> {
    match place {
        Place::Port(ifname) => p.str("ifname", &format!("{word}dev {{}}"), ifname),
        Place::Remote(ip) => p.str("dst", &format!("{word}dst {{}}"), ip),
    }
}

/// Prints one event; `stamp` is its time, when asked for. An event of an
/// unknown kind (from a newer vtep) is skipped.
pub fn event<W: Write>(
    p: &mut Printer<W>,
    ev: &FdbEvent,
    stamp: Option<&str>,
    ifname: &mut impl FnMut(u32) -> String,
) -> io::Result<()> {
    let Some(kind) = ev.event_kind() else {
        return Ok(());
    };
    let (shown, from) = if kind.removes() {
        (row(ev, &ev.old, ifname), None)
    } else {
        let from =
            (ev.old.kind != 0 && !ev.old.same_place(&ev.new)).then(|| row(ev, &ev.old, ifname));
        (row(ev, &ev.new, ifname), from)
    };
    p.open_object(None)?;
    if let Some(t) = stamp {
        p.str("timestamp", "[{}]", t)?;
    }
    if kind.removes() {
        if p.is_json() {
            p.on_off("deleted", "{}", true)?;
        } else {
            p.text("Deleted")?;
        }
    }
    p.str("mac", "{}", shown.mac)?;
    match from {
        Some(from) => {
            p.open_object(Some("from"))?;
            place(p, &from.place, "from ")?;
            p.close_object()?;
            place(p, &shown.place, "to ")?;
        }
        None => place(p, &shown.place, "")?,
    }
    p.uint("vni", "vni {}", shown.vni.into())?;
    if shown.extern_learn() {
        p.flag("extern_learn")?;
    }
    p.str("origin", "origin {}", shown.origin())?;
    if p.is_json() {
        p.str("state", "{}", shown.state())?;
    }
    p.str("event", "{}", word(kind, ev))?;
    p.nl()?;
    p.close_object()
}

/// Prints that `n` events were lost, and where.
pub fn lost<W: Write>(
    p: &mut Printer<W>,
    why: Lost,
    n: u64,
    stamp: Option<&str>,
) -> io::Result<()> {
    p.open_object(None)?;
    if let Some(t) = stamp {
        p.str("timestamp", "[{}]", t)?;
    }
    p.uint("lost", "Lost {} events:", n)?;
    let (key, text) = match why {
        Lost::Client => ("client", "this monitor read too slowly"),
        Lost::Datapath => ("datapath", "the datapath's ring buffer was full"),
    };
    p.str("where", "{}", if p.is_json() { key } else { text })?;
    p.nl()?;
    p.close_object()
}

/// The wall-clock time, local, of an event at `event_ns` on
/// `CLOCK_MONOTONIC`, as `bridge -tshort` prints it:
/// `2026-12-01T23:20:31.123456`.
pub fn stamp(event_ns: u64) -> String {
    let mono_now = crate::system::clock::monotonic_ns();
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let wall = wall_now.saturating_sub(mono_now.saturating_sub(event_ns));
    let secs = (wall / 1_000_000_000) as libc::time_t;
    let micros = (wall % 1_000_000_000) / 1_000;
    // SAFETY: an all-zero tm is valid; localtime_r writes into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use vtep_common::{
        FDB_F_FOLLOWED, FDB_F_LEARNED, FDB_F_STATIC, FdbEntry, FdbKey, VtepAddr, event::EventKind,
    };

    use super::*;
    use crate::cli::output::printer::tests::printed;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];

    fn ev(kind: EventKind, old: FdbEntry, new: FdbEntry) -> FdbEvent {
        FdbEvent::new(kind, FdbKey::new(100, MAC), old, new, 5)
    }

    fn port(flags: u8) -> FdbEntry {
        FdbEntry::local(7, flags, 5)
    }

    fn remote(last: u8, flags: u8) -> FdbEntry {
        FdbEntry::remote(VtepAddr::v4([198, 18, 0, last]), flags, 5)
    }

    fn none() -> FdbEntry {
        FdbEntry::default()
    }

    fn shown(json: bool, events: &[FdbEvent], stamp: Option<&str>) -> String {
        printed(json, |p| {
            for e in events {
                event(p, e, stamp, &mut |i| format!("t1w{i}"))?;
            }
            Ok(())
        })
    }

    fn every_kind() -> Vec<FdbEvent> {
        vec![
            ev(EventKind::Learned, none(), port(FDB_F_LEARNED)),
            ev(
                EventKind::Moved,
                port(FDB_F_LEARNED),
                remote(2, FDB_F_LEARNED),
            ),
            ev(EventKind::Aged, remote(2, FDB_F_LEARNED), none()),
            ev(EventKind::Added, none(), port(FDB_F_STATIC)),
            ev(
                EventKind::Added,
                port(FDB_F_STATIC),
                remote(3, FDB_F_STATIC),
            ),
            ev(
                EventKind::Added,
                remote(3, FDB_F_STATIC),
                remote(3, FDB_F_STATIC),
            ),
            ev(EventKind::Deleted, remote(3, FDB_F_STATIC), none()),
            ev(EventKind::Added, none(), remote(4, FDB_F_FOLLOWED)),
            FdbEvent::new(
                EventKind::Added,
                FdbKey::new(100, [0; 6]),
                none(),
                remote(9, FDB_F_STATIC),
                5,
            ),
        ]
    }

    #[test]
    fn text_lines() {
        assert_eq!(
            shown(false, &every_kind(), None),
            "\
02:00:00:00:0a:01 dev t1w7 vni 100 origin datapath learned
02:00:00:00:0a:01 from dev t1w7 to dst 198.18.0.2 vni 100 origin datapath moved
Deleted 02:00:00:00:0a:01 dst 198.18.0.2 vni 100 origin datapath aged
02:00:00:00:0a:01 dev t1w7 vni 100 origin cli added
02:00:00:00:0a:01 from dev t1w7 to dst 198.18.0.3 vni 100 origin cli replaced
02:00:00:00:0a:01 dst 198.18.0.3 vni 100 origin cli replaced
Deleted 02:00:00:00:0a:01 dst 198.18.0.3 vni 100 origin cli deleted
02:00:00:00:0a:01 dst 198.18.0.4 vni 100 extern_learn origin kernel added
00:00:00:00:00:00 dst 198.18.0.9 vni 100 origin config added
"
        );
    }

    #[test]
    fn json_lines() {
        let json = shown(true, &every_kind()[..3], None);
        assert_eq!(
            json,
            concat!(
                r#"{"mac":"02:00:00:00:0a:01","ifname":"t1w7","vni":100,"origin":"datapath","state":"learned","event":"learned"}"#,
                "\n",
                r#"{"mac":"02:00:00:00:0a:01","from":{"ifname":"t1w7"},"dst":"198.18.0.2","vni":100,"origin":"datapath","state":"learned","event":"moved"}"#,
                "\n",
                r#"{"deleted":true,"mac":"02:00:00:00:0a:01","dst":"198.18.0.2","vni":100,"origin":"datapath","state":"learned","event":"aged"}"#,
                "\n",
            )
        );
        for line in shown(true, &every_kind(), None).lines() {
            serde_json::from_str::<serde_json::Value>(line).expect(line);
        }
    }

    #[test]
    fn timestamps_come_first() {
        let e = &every_kind()[..1];
        assert_eq!(
            shown(false, e, Some("2026-12-01T23:20:31.123456")),
            "[2026-12-01T23:20:31.123456] 02:00:00:00:0a:01 dev t1w7 vni 100 origin datapath learned\n"
        );
        assert!(
            shown(true, e, Some("2026-12-01T23:20:31.123456"))
                .starts_with(r#"{"timestamp":"2026-12-01T23:20:31.123456","mac""#)
        );
    }

    #[test]
    fn lost_events() {
        let text = printed(false, |p| {
            lost(p, Lost::Client, 12, None)?;
            lost(p, Lost::Datapath, 3, None)
        });
        assert_eq!(
            text,
            "Lost 12 events: this monitor read too slowly\n\
             Lost 3 events: the datapath's ring buffer was full\n"
        );
        let json = printed(true, |p| lost(p, Lost::Datapath, 3, None));
        assert_eq!(json, "{\"lost\":3,\"where\":\"datapath\"}\n");
    }

    #[test]
    fn stamps_are_iso_times_with_microseconds() {
        let s = stamp(crate::system::clock::monotonic_ns());
        let b = s.as_bytes();
        assert_eq!(s.len(), 26, "{s}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19]),
            (b'-', b'-', b'T', b':', b':', b'.'),
            "{s}"
        );
        assert!(s.starts_with("20"), "{s}");
    }

    #[test]
    fn an_unknown_kind_is_skipped() {
        let e = FdbEvent {
            kind: 99,
            ..every_kind()[0]
        };
        assert_eq!(shown(false, &[e], None), "");
    }
}
