//! What the config leaves to the followed devices: the underlay's local
//! address and UDP port.

use std::{collections::BTreeSet, net::IpAddr};

use anyhow::{Context as _, Result, bail};
use netlink_packet_route::{RouteNetlinkMessage, link::LinkMessage};

use crate::{
    model::config::{Config, Locals},
    system::netlink::{self, Vxlan, parse_link},
};

/// Fills in what the config left to the followed devices (`underlay.local`,
/// `underlay.port`), saying in the log what was taken from which link. Call
/// before anything is applied.
pub fn complete_underlay(cfg: &mut Config) -> Result<()> {
    let Some(follow) = cfg.follow.clone() else {
        return Ok(());
    };
    if !follow.local_from_link && !follow.port_from_link {
        return Ok(());
    }
    let mut devices: Vec<(String, Vxlan)> = Vec::new();
    netlink::dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |m| {
        if let RouteNetlinkMessage::NewLink(l) = m {
            let link = parse_link(&l);
            if let Some(vx) = link.vxlan
                && !vx.external
                && follow.wants(&link.name)
            {
                devices.push((link.name, vx));
            }
        }
    })
    .context("dumping links")?;
    let names = |v: &[&(String, Vxlan)]| {
        v.iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if follow.local_from_link {
        let with_local: Vec<&(String, Vxlan)> =
            devices.iter().filter(|(_, v)| v.local.is_some()).collect();
        let locals: BTreeSet<IpAddr> = with_local.iter().filter_map(|(_, v)| v.local).collect();
        cfg.underlay.local = locals_of(&locals)?;
        log::info!(
            "underlay.local {}: taken from {} (not in the config)",
            locals
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            names(&with_local)
        );
    }
    if follow.port_from_link {
        let ports: BTreeSet<u16> = devices.iter().map(|(_, v)| v.port).collect();
        match ports.len() {
            0 => log::info!(
                "underlay.port {}: the default (no followed device yet to take it from)",
                cfg.underlay.port
            ),
            1 => {
                let port = *ports.iter().next().expect("one port");
                cfg.underlay.port = port;
                let all: Vec<&(String, Vxlan)> = devices.iter().collect();
                log::info!(
                    "underlay.port {port}: taken from {} (not in the config)",
                    names(&all)
                );
            }
            _ => bail!(
                "underlay.port is not in the config and the followed devices disagree on it \
                 ({ports:?}): set underlay.port"
            ),
        }
    }
    Ok(())
}

/// The underlay's local addresses from the followed devices' `local`s: one
/// of each family at most (a dual-stack VTEP has one of each).
fn locals_of(found: &BTreeSet<IpAddr>) -> Result<Locals> {
    if found.is_empty() {
        bail!(
            "underlay.local is not in the config and no followed vxlan device has a local \
             address (`ip link add ... type vxlan ... local IP`): set underlay.local"
        );
    }
    let mut locals = Locals::default();
    for family in [false, true] {
        let of: Vec<&IpAddr> = found.iter().filter(|ip| ip.is_ipv6() == family).collect();
        if of.len() > 1 {
            bail!(
                "underlay.local is not in the config and the followed devices disagree on it \
                 ({}): set underlay.local",
                of.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(ip) = of.first() {
            locals.set(**ip);
        }
    }
    Ok(locals)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    #[test]
    fn one_local_address_of_each_family_is_taken() {
        let l = locals_of(&[IpAddr::V6(V6)].into()).expect("one IPv6 address");
        assert_eq!((l.v4, l.v6), (None, Some(V6)));
        let l = locals_of(&[IpAddr::V4(V4), IpAddr::V6(V6)].into()).expect("dual stack");
        assert_eq!((l.v4, l.v6), (Some(V4), Some(V6)));
    }

    #[test]
    fn no_address_or_two_of_a_family_is_refused() {
        let said = |r: Result<Locals>| r.expect_err("refused").to_string();
        assert!(said(locals_of(&BTreeSet::new())).contains("no followed vxlan device"));
        let two6 = [
            IpAddr::V6(V6),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
            IpAddr::V4(V4),
        ];
        let msg = said(locals_of(&two6.into()));
        assert!(
            msg.contains("disagree") && msg.contains("2001:db8::9") && !msg.contains("198.18"),
            "{msg}"
        );
    }
}
