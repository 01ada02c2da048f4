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
        match locals.len() {
            0 => bail!(
                "underlay.local is not in the config and no followed vxlan device has a local \
                 address (`ip link add ... type vxlan ... local IP`): set underlay.local"
            ),
            1 => {
                let local = *locals.iter().next().expect("one address");
                if local.is_ipv6() {
                    bail!(
                        "the followed devices' local address {local} is IPv6, which vtep's \
                         underlay does not support yet"
                    );
                }
                cfg.underlay.local = Locals::one(local);
                log::info!(
                    "underlay.local {local}: taken from {} (not in the config)",
                    names(&with_local)
                );
            }
            _ => bail!(
                "underlay.local is not in the config and the followed devices disagree on it \
                 ({}): set underlay.local",
                locals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
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
