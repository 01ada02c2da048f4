//! What the CLI prints: text in the manner of `bridge fdb show` and
//! `bridge -s`, or JSON with iproute2's key names (`-j`).

mod printer;

pub use printer::Printer;

use serde_json::{Value, json};
use vtep_common::{VNI_F_CHECK_SOURCE, VNI_F_KERNEL_FALLBACK, VNI_F_LEARNING};

use crate::gateway::{FdbRow, Place, Stats, VniRow};

fn print_json(v: &Value) {
    println!("{v}");
}

/// `vtep fdb show`.
pub fn fdb(rows: &[FdbRow], json: bool) {
    if json {
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut o = json!({
                    "mac": r.mac.to_string(),
                    "vni": r.vni,
                    "state": r.state(),
                    "origin": r.origin(),
                });
                match &r.place {
                    Place::Remote(ip) => o["dst"] = json!(ip.to_string()),
                    Place::Port { ifname, .. } => o["ifname"] = json!(ifname),
                }
                if let Some(age) = r.age {
                    o["age"] = json!(age);
                }
                o
            })
            .collect();
        return print_json(&Value::Array(list));
    }
    for r in rows {
        let place = match &r.place {
            Place::Remote(ip) => format!("dst {ip}"),
            Place::Port { ifname, .. } => format!("port {ifname}"),
        };
        let age = r.age.map(|a| format!(" age {a}s")).unwrap_or_default();
        // Mirrored from the kernel FDB ([follow]): say so, as it cannot be
        // changed here.
        let origin = if r.origin() == "kernel" {
            " origin kernel"
        } else {
            ""
        };
        println!("{} {place} vni {} {}{age}{origin}", r.mac, r.vni, r.state());
    }
}

/// `vtep vni show`.
pub fn vnis(rows: &[VniRow], json: bool) {
    let on = |f: u32| if f != 0 { "on" } else { "off" };
    if json {
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "vni": r.vni,
                    "learning": r.info.flags & VNI_F_LEARNING != 0,
                    "ageing": r.info.ageing_secs,
                    "maxaddress": r.info.max_addresses,
                    "check_source": r.info.flags & VNI_F_CHECK_SOURCE != 0,
                    "learned": r.learned,
                    "followed": r.info.flags & VNI_F_KERNEL_FALLBACK != 0,
                    "ports": r.ports.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
                    "flood": r.flood.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&Value::Array(list));
    }
    for r in rows {
        let ports: Vec<&str> = r.ports.iter().map(|(_, n)| n.as_str()).collect();
        let flood: Vec<String> = r.flood.iter().map(|ip| ip.to_string()).collect();
        println!(
            "vni {} learning {} ageing {} maxaddress {} check_source {} learned {}{}",
            r.vni,
            on(r.info.flags & VNI_F_LEARNING),
            r.info.ageing_secs,
            r.info.max_addresses,
            on(r.info.flags & VNI_F_CHECK_SOURCE),
            r.learned,
            if r.info.flags & VNI_F_KERNEL_FALLBACK != 0 {
                " followed (kernel fallback)"
            } else {
                ""
            }
        );
        println!(
            "    ports {}",
            if ports.is_empty() {
                "-".into()
            } else {
                ports.join(" ")
            }
        );
        println!(
            "    flood {}",
            if flood.is_empty() {
                "-".into()
            } else {
                flood.join(" ")
            }
        );
    }
}

/// One access port, as `vtep port show` lists it.
pub struct PortRow {
    pub ifname: String,
    pub ifindex: u32,
    pub vni: u32,
    /// XDP redirects into it (else frames for it take the TC path).
    pub xdp_redirect: bool,
}

/// `vtep port show`.
pub fn ports(rows: &[PortRow], json: bool) {
    if json {
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "ifname": r.ifname,
                    "ifindex": r.ifindex,
                    "vni": r.vni,
                    "delivery": if r.xdp_redirect { "xdp" } else { "tc" },
                })
            })
            .collect();
        return print_json(&Value::Array(list));
    }
    for r in rows {
        println!(
            "{} ifindex {} vni {} delivery {}",
            r.ifname,
            r.ifindex,
            r.vni,
            if r.xdp_redirect { "xdp" } else { "tc" }
        );
    }
}

/// `vtep stats`.
pub fn stats(s: &Stats, json: bool, all: bool) {
    let reasons: Vec<_> = s.reasons.iter().filter(|(_, n)| all || *n != 0).collect();
    if json {
        let vnis: Vec<Value> = s
            .vnis
            .iter()
            .map(|(vni, c)| {
                json!({
                    "vni": vni,
                    "rx_packets": c.rx_packets, "rx_bytes": c.rx_bytes,
                    "tx_packets": c.tx_packets, "tx_bytes": c.tx_bytes,
                    "local_packets": c.local_packets, "local_bytes": c.local_bytes,
                    "flood_packets": c.flood_packets,
                })
            })
            .collect();
        let reasons: Vec<Value> = reasons
            .iter()
            .map(|(r, n)| json!({"reason": r.name(), "count": n, "outcome": r.outcome().name()}))
            .collect();
        return print_json(&json!({ "vni": vnis, "reasons": reasons }));
    }
    for (vni, c) in &s.vnis {
        println!("vni {vni}");
        println!("    RX: bytes packets   (decap, from the underlay)");
        println!("    {:<10} {}", c.rx_bytes, c.rx_packets);
        println!("    TX: bytes packets   (encap, to the underlay)");
        println!("    {:<10} {}", c.tx_bytes, c.tx_packets);
        println!("    local: bytes packets flooded");
        println!(
            "    {:<10} {:<7} {}",
            c.local_bytes, c.local_packets, c.flood_packets
        );
    }
    println!("reasons:");
    if reasons.is_empty() {
        println!("    (none)");
    }
    for (r, n) in reasons {
        println!("    {:<22} {:>12} {}", r.name(), n, r.outcome().name());
    }
}
