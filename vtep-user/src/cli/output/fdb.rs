//! `vtep fdb show`: the FDB's entries and flood lists in `bridge fdb show`'s
//! words.
//!
//! ```text
//! 02:00:00:00:01:02 dev t1w1 vni 100 origin cli static
//! 02:00:00:00:02:01 dst 198.18.0.2 vni 100 age 3s origin datapath learned
//! 02:00:00:00:02:02 dst 198.18.0.2 vni 100 extern_learn origin kernel static
//! 00:00:00:00:00:00 dst 239.1.1.1 vni 100 origin config permanent
//! 00:00:00:00:00:00 dst 198.18.0.2 vni 100 origin config permanent
//! ```
//!
//! As in `bridge fdb`: `dev` is the access port behind which the MAC is
//! (`port` is a UDP port there), `dst` the remote VTEP, `extern_learn` a
//! flag (an entry the follower mirrored from the kernel FDB) and the state
//! comes last. `origin` says which of config, CLI, datapath or kernel wrote
//! the entry. A VNI's multicast group is listed as `bridge fdb show` lists
//! a `group` device's: the all-zeros entry whose `dst` is the group, before
//! the flood-list members.

use std::{
    io::{self, Write},
    net::{IpAddr, Ipv4Addr},
};

use vtep_common::{
    FDB_F_CONFIG, FDB_F_FOLLOWED, FDB_F_LEARNED, FDB_F_STATIC, FDB_KIND_LOCAL, FdbEntry, FdbKey,
};

use super::Printer;
use crate::model::addr::{Mac, from_vtep};

/// Where an FDB row's MAC is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Behind this access port (its name).
    Port(String),
    /// Behind this remote VTEP.
    Remote(IpAddr),
}

/// One row of `vtep fdb show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbRow {
    pub mac: Mac,
    pub vni: u32,
    pub place: Place,
    /// Raw `FDB_F_*` flags.
    pub flags: u8,
    /// Seconds since last seen, for learned entries.
    pub age: Option<u64>,
    /// A flood-list member (`00:00:00:00:00:00 dst ...`).
    pub flood: bool,
}

impl FdbRow {
    /// The row of FDB entry `key` → `entry`, its port named by `ifname`.
    pub fn entry(
        key: &FdbKey,
        entry: &FdbEntry,
        now_ns: u64,
        ifname: &mut impl FnMut(u32) -> String,
    ) -> FdbRow {
        FdbRow {
            mac: Mac(key.mac),
            vni: key.vni,
            place: if entry.kind == FDB_KIND_LOCAL {
                Place::Port(ifname(entry.ifindex))
            } else {
                Place::Remote(from_vtep(&entry.remote).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
            },
            flags: entry.flags,
            age: (entry.flags & FDB_F_LEARNED != 0)
                .then(|| now_ns.saturating_sub(entry.last_seen_ns) / 1_000_000_000),
            flood: false,
        }
    }

    /// The row of flood-list member `dst` of `vni`, a followed VNI's when
    /// `followed`.
    pub fn flood_member(vni: u32, dst: IpAddr, followed: bool) -> FdbRow {
        FdbRow {
            mac: Mac::ZERO,
            vni,
            place: Place::Remote(dst),
            flags: if followed {
                FDB_F_FOLLOWED
            } else {
                FDB_F_STATIC
            },
            age: None,
            flood: true,
        }
    }

    /// The state word of `bridge fdb show`: `permanent` for flood-list and
    /// config entries, `learned` for learned ones, `static` for the others
    /// (CLI entries, and what the follower mirrored: never aged, never
    /// replaced by learning).
    pub fn state(&self) -> &'static str {
        if self.flood {
            "permanent"
        } else if self.flags & FDB_F_LEARNED != 0 {
            "learned"
        } else if self.flags & FDB_F_FOLLOWED != 0 {
            "static"
        } else if self.flags & FDB_F_CONFIG != 0 {
            "permanent"
        } else {
            "static"
        }
    }

    /// `extern_learn`: mirrored from the kernel FDB by the follower, which
    /// plays the part zebra plays for the kernel's bridge.
    pub fn extern_learn(&self) -> bool {
        self.flags & FDB_F_FOLLOWED != 0 && self.flags & FDB_F_LEARNED == 0
    }

    /// Where the entry came from.
    pub fn origin(&self) -> &'static str {
        if self.extern_learn() {
            "kernel"
        } else if self.flood || self.flags & FDB_F_CONFIG != 0 {
            "config"
        } else if self.flags & FDB_F_LEARNED != 0 {
            "datapath"
        } else {
            "cli"
        }
    }
}

/// Prints one row: a line of text, or an object of the JSON array.
pub fn row<W: Write>(p: &mut Printer<W>, r: &FdbRow) -> io::Result<()> {
    p.open_object(None)?;
    p.str("mac", "{}", r.mac)?;
    match &r.place {
        Place::Port(ifname) => p.str("ifname", "dev {}", ifname)?,
        Place::Remote(ip) => p.str("dst", "dst {}", ip)?,
    }
    p.uint("vni", "vni {}", r.vni.into())?;
    if let Some(age) = r.age {
        p.uint("age", "age {}s", age)?;
    }
    if r.extern_learn() {
        p.flag("extern_learn")?;
    }
    p.str("origin", "origin {}", r.origin())?;
    p.str("state", "{}", r.state())?;
    p.nl()?;
    p.close_object()
}

/// A flood list as `fdb show` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodRows {
    pub vni: u32,
    /// The VNI is followed: the list is the kernel's.
    pub followed: bool,
    /// The VNI's multicast group, listed first.
    pub group: Option<IpAddr>,
    pub members: Vec<IpAddr>,
}

/// `vtep fdb show`: `entries` (sorted by VNI, then MAC) and each VNI's
/// flood list after its entries (`floods` sorted by VNI), a row at a time.
pub fn show<W: Write>(
    p: &mut Printer<W>,
    entries: &[(FdbKey, FdbEntry)],
    floods: &[FloodRows],
    now_ns: u64,
    ifname: &mut impl FnMut(u32) -> String,
) -> io::Result<()> {
    let flood_rows = |p: &mut Printer<W>, f: &FloodRows| -> io::Result<()> {
        for &dst in f.group.iter().chain(&f.members) {
            row(p, &FdbRow::flood_member(f.vni, dst, f.followed))?;
        }
        Ok(())
    };
    p.open_array(None)?;
    let mut floods = floods.iter().peekable();
    for (key, entry) in entries {
        while let Some(f) = floods.next_if(|f| f.vni < key.vni) {
            flood_rows(p, f)?;
        }
        row(p, &FdbRow::entry(key, entry, now_ns, ifname))?;
    }
    for f in floods {
        flood_rows(p, f)?;
    }
    p.close_array()
}

#[cfg(test)]
mod tests {
    use vtep_common::VtepAddr;

    use super::*;
    use crate::cli::output::printer::tests::printed;

    const NOW: u64 = 1_000 * 1_000_000_000;

    fn mac(last: u8) -> [u8; 6] {
        [2, 0, 0, 0, 1, last]
    }

    fn remote(flags: u8, seen_s: u64) -> FdbEntry {
        FdbEntry::remote(VtepAddr::v4([198, 18, 0, 2]), flags, seen_s * 1_000_000_000)
    }

    /// One of each kind of entry, and flood lists of a plain and of a
    /// followed VNI, as the maps would hold them.
    fn table() -> (Vec<(FdbKey, FdbEntry)>, Vec<FloodRows>) {
        let entries = vec![
            // VNI 100: CLI, config, learned (remote and local).
            (
                FdbKey::new(100, mac(1)),
                FdbEntry::local(7, FDB_F_STATIC, 0),
            ),
            (
                FdbKey::new(100, mac(2)),
                remote(FDB_F_STATIC | FDB_F_CONFIG, 0),
            ),
            (FdbKey::new(100, mac(3)), remote(FDB_F_LEARNED, 997)),
            (
                FdbKey::new(100, mac(4)),
                FdbEntry::local(8, FDB_F_LEARNED, NOW),
            ),
            // VNI 200, followed: a remote and a local entry.
            (FdbKey::new(200, mac(5)), remote(FDB_F_FOLLOWED, 0)),
            (
                FdbKey::new(200, mac(6)),
                FdbEntry::local(7, FDB_F_FOLLOWED, 0),
            ),
        ];
        let floods = vec![
            FloodRows {
                vni: 100,
                followed: false,
                group: Some("239.1.1.1".parse().unwrap()),
                members: vec!["198.18.0.2".parse().unwrap(), "198.18.0.3".parse().unwrap()],
            },
            FloodRows {
                vni: 200,
                followed: true,
                group: None,
                members: vec!["198.18.0.4".parse().unwrap()],
            },
            FloodRows {
                vni: 300,
                followed: false,
                group: Some("ff05::100".parse().unwrap()),
                members: vec![],
            },
        ];
        (entries, floods)
    }

    fn shown(json: bool) -> String {
        let (entries, floods) = table();
        printed(json, |p| {
            show(p, &entries, &floods, NOW, &mut |i| format!("t1w{i}"))
        })
    }

    #[test]
    fn text_lines() {
        assert_eq!(
            shown(false),
            "\
02:00:00:00:01:01 dev t1w7 vni 100 origin cli static
02:00:00:00:01:02 dst 198.18.0.2 vni 100 origin config permanent
02:00:00:00:01:03 dst 198.18.0.2 vni 100 age 3s origin datapath learned
02:00:00:00:01:04 dev t1w8 vni 100 age 0s origin datapath learned
00:00:00:00:00:00 dst 239.1.1.1 vni 100 origin config permanent
00:00:00:00:00:00 dst 198.18.0.2 vni 100 origin config permanent
00:00:00:00:00:00 dst 198.18.0.3 vni 100 origin config permanent
02:00:00:00:01:05 dst 198.18.0.2 vni 200 extern_learn origin kernel static
02:00:00:00:01:06 dev t1w7 vni 200 extern_learn origin kernel static
00:00:00:00:00:00 dst 198.18.0.4 vni 200 extern_learn origin kernel permanent
00:00:00:00:00:00 dst ff05::100 vni 300 origin config permanent
"
        );
    }

    #[test]
    fn json() {
        let json = shown(true);
        assert_eq!(
            json,
            concat!(
                "[",
                r#"{"mac":"02:00:00:00:01:01","ifname":"t1w7","vni":100,"origin":"cli","state":"static"},"#,
                r#"{"mac":"02:00:00:00:01:02","dst":"198.18.0.2","vni":100,"origin":"config","state":"permanent"},"#,
                r#"{"mac":"02:00:00:00:01:03","dst":"198.18.0.2","vni":100,"age":3,"origin":"datapath","state":"learned"},"#,
                r#"{"mac":"02:00:00:00:01:04","ifname":"t1w8","vni":100,"age":0,"origin":"datapath","state":"learned"},"#,
                r#"{"mac":"00:00:00:00:00:00","dst":"239.1.1.1","vni":100,"origin":"config","state":"permanent"},"#,
                r#"{"mac":"00:00:00:00:00:00","dst":"198.18.0.2","vni":100,"origin":"config","state":"permanent"},"#,
                r#"{"mac":"00:00:00:00:00:00","dst":"198.18.0.3","vni":100,"origin":"config","state":"permanent"},"#,
                r#"{"mac":"02:00:00:00:01:05","dst":"198.18.0.2","vni":200,"flags":["extern_learn"],"origin":"kernel","state":"static"},"#,
                r#"{"mac":"02:00:00:00:01:06","ifname":"t1w7","vni":200,"flags":["extern_learn"],"origin":"kernel","state":"static"},"#,
                r#"{"mac":"00:00:00:00:00:00","dst":"198.18.0.4","vni":200,"flags":["extern_learn"],"origin":"kernel","state":"permanent"},"#,
                r#"{"mac":"00:00:00:00:00:00","dst":"ff05::100","vni":300,"origin":"config","state":"permanent"}"#,
                "]\n"
            )
        );
        let rows: Vec<serde_json::Value> = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(rows.len(), 11);
    }

    #[test]
    fn an_empty_table() {
        let none = |json| printed(json, |p| show(p, &[], &[], NOW, &mut |i| format!("if{i}")));
        assert_eq!(none(false), "");
        assert_eq!(none(true), "[]\n");
    }

    #[test]
    fn entries_of_a_vni_without_a_flood_list_come_in_order() {
        // Flood lists of VNIs before, between and after the entries' VNIs.
        let entries = [
            (FdbKey::new(20, mac(1)), remote(FDB_F_STATIC, 0)),
            (FdbKey::new(40, mac(1)), remote(FDB_F_STATIC, 0)),
        ];
        let flood = |vni| FloodRows {
            vni,
            followed: false,
            group: None,
            members: vec!["198.18.0.9".parse().unwrap()],
        };
        let floods = [flood(10), flood(30), flood(50)];
        let text = printed(false, |p| {
            show(p, &entries, &floods, NOW, &mut |i| format!("if{i}"))
        });
        let vnis: Vec<&str> = text.lines().map(|l| l.split(' ').nth(4).unwrap()).collect();
        assert_eq!(vnis, ["10", "20", "30", "40", "50"], "{text}");
    }
}
