//! Applying a config to a gateway, and adding access ports: the steps the
//! daemon and the CLI share.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result};
use vtep_common::{
    FDB_F_CONFIG, FDB_F_STATIC, FdbEntry, NeighEntry, UNDERLAY_F_FIB, UNDERLAY_F_KERNEL_VXLAN,
    UNDERLAY_F_LABEL_FIXED, UNDERLAY_F_LABEL_INHERIT, UNDERLAY_F_TOS_INHERIT, UNDERLAY_F_UDP_CSUM,
    UNDERLAY_F_UDP6_ZERO_CSUM_RX, UNDERLAY_F_UDP6_ZERO_CSUM_TX, Underlay, VtepAddr,
};

use crate::{
    datapath::{
        gateway::{Gateway, GatewayError, SetMode},
        loader::{self, Role},
    },
    model::{
        addr::to_vtep,
        config::{Config, ConfigError, ConfigErrors, FdbTarget, FlowLabel, Tos},
    },
    system::{
        iface::{self, FarEnd},
        netlink::Rtnl,
    },
};

/// The interfaces a config names, resolved to ifindexes.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub uplink: u32,
    pub uplink_mac: [u8; 6],
    pub uplink_mtu: u16,
    /// Forwarding is on for the uplink, so `bpf_fib_lookup` answers.
    pub fib: bool,
    pub ports: BTreeMap<String, u32>,
}

/// Reads and checks the config at `path`, and when it is refused, which of
/// the interfaces it names do not exist: every problem in one list.
pub fn read_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)?;
    text.parse::<Config>().map_err(|mut e| {
        let missing = missing_interfaces(&e.interfaces);
        e.errors.extend(missing);
        e.into()
    })
}

fn missing_interfaces(named: &[(String, String)]) -> Vec<ConfigError> {
    named
        .iter()
        .filter(|(_, name)| iface::ifindex(name).is_none())
        .map(|(field, name)| {
            ConfigError::new(
                field.clone(),
                format!("no interface named {name:?} in this network namespace"),
            )
        })
        .collect()
}

/// Resolves every interface of `cfg` before anything is changed, so that a
/// missing one refuses the config whole, naming the field (every missing
/// one, not only the first).
pub fn resolve(cfg: &Config) -> Result<Resolved, ConfigErrors> {
    let mut errors = missing_interfaces(&cfg.interfaces());
    let name = &cfg.underlay.interface;
    let uplink = iface::ifindex(name).and_then(|uplink| {
        match Rtnl::new().and_then(|mut r| r.link_mac_mtu(uplink)) {
            Ok((mac, mtu)) => Some((uplink, mac, mtu.min(u32::from(u16::MAX)) as u16)),
            Err(e) => {
                errors.push(ConfigError::new(
                    "underlay.interface",
                    format!("{name}: {e}"),
                ));
                None
            }
        }
    });
    let ports = cfg
        .vnis
        .iter()
        .flat_map(|v| &v.ports)
        .filter_map(|p| Some((p.clone(), iface::ifindex(p)?)))
        .collect();
    match uplink {
        Some((uplink, uplink_mac, uplink_mtu)) if errors.is_empty() => Ok(Resolved {
            uplink,
            uplink_mac,
            uplink_mtu,
            fib: iface::ipv4_forwarding(name),
            ports,
        }),
        _ => Err(ConfigErrors {
            errors,
            interfaces: Vec::new(),
        }),
    }
}

/// The `UNDERLAY` entry of a config.
pub fn underlay(cfg: &Config, r: &Resolved) -> Underlay {
    let u = &cfg.underlay;
    let flag = |on: bool, f: u8| if on { f } else { 0 };
    let (tos, tos_inherit) = match u.tos {
        Tos::Fixed(t) => (t, false),
        Tos::Inherit => (0, true),
    };
    let (flowlabel, label_flag) = match u.flowlabel {
        FlowLabel::Hash => (0, 0),
        FlowLabel::Inherit => (0, UNDERLAY_F_LABEL_INHERIT),
        FlowLabel::Fixed(l) => (l, UNDERLAY_F_LABEL_FIXED),
    };
    Underlay {
        local: u
            .local
            .v4
            .map_or_else(VtepAddr::default, |a| to_vtep(a.into())),
        local6: u
            .local
            .v6
            .map_or_else(VtepAddr::default, |a| to_vtep(a.into())),
        uplink_ifindex: r.uplink,
        flowlabel,
        port: u.port,
        srcport_min: u.srcport.0,
        srcport_max: u.srcport.1,
        ttl: u.ttl,
        tos,
        flags: flag(u.udp_checksum, UNDERLAY_F_UDP_CSUM)
            | flag(r.fib, UNDERLAY_F_FIB)
            | flag(cfg.follow.is_some(), UNDERLAY_F_KERNEL_VXLAN)
            | flag(u.udp6_zero_csum_tx, UNDERLAY_F_UDP6_ZERO_CSUM_TX)
            | flag(u.udp6_zero_csum_rx, UNDERLAY_F_UDP6_ZERO_CSUM_RX)
            | flag(tos_inherit, UNDERLAY_F_TOS_INHERIT)
            | label_flag,
        uplink_mac: r.uplink_mac,
        mtu: r.uplink_mtu,
        ..Underlay::default()
    }
}

/// Applies a validated, resolved config. State the config does not mention
/// (VNIs, ports and entries added with the CLI, learned MACs) is kept.
pub fn config(gw: &mut Gateway, cfg: &Config, r: &Resolved) -> Result<()> {
    gw.set_underlay(&underlay(cfg, r))?;
    for v in &cfg.vnis {
        if gw.vni_followed(v.id) {
            log::info!(
                "VNI {} was followed from a kernel vxlan device; the config takes it over",
                v.id
            );
            gw.vni_unfollow(v.id)?;
        }
        gw.vni_set(v, true)
            .with_context(|| format!("VNI {}", v.id))?;
        let members: Vec<_> = v.flood.iter().copied().map(to_vtep).collect();
        gw.flood_set(v.id, &members)?;
    }
    for v in &cfg.vnis {
        for p in &v.ports {
            add_port(gw, p, v.id).with_context(|| format!("VNI {}: access port {p}", v.id))?;
        }
    }
    for e in &cfg.fdb {
        match &e.target {
            FdbTarget::Remote(ip) if e.mac.is_zero() => match gw.flood_add(e.vni, *ip) {
                Ok(()) | Err(GatewayError::FloodMemberExists { .. }) => {}
                Err(err) => return Err(err.into()),
            },
            FdbTarget::Remote(ip) => {
                let entry = FdbEntry::remote(to_vtep(*ip), FDB_F_STATIC | FDB_F_CONFIG, 0);
                gw.fdb_set(e.vni, e.mac, entry, SetMode::Replace)?;
            }
            FdbTarget::Port(p) => {
                let entry = FdbEntry::local(r.ports[p], FDB_F_STATIC | FDB_F_CONFIG, 0);
                gw.fdb_set(e.vni, e.mac, entry, SetMode::Replace)?;
            }
        }
    }
    Ok(())
}

/// Brings up the uplink: programs attached, and XDP allowed to redirect
/// into it once its far end can take XDP frames.
pub fn attach_uplink(gw: &mut Gateway, name: &str, ifindex: u32) -> Result<()> {
    loader::attach(&gw.pins, name, ifindex, Role::Uplink)?;
    enable_xdp_tx(gw, name, ifindex)?;
    Ok(())
}

/// Makes `ifname` an access port of `vni`: maps, programs, and the XDP
/// redirect path once the port's far end can take XDP frames (until then
/// frames for it take the TC path). Undone whole if a step fails. The ports
/// of a followed VNI are its bridge's: they cannot be added by hand.
pub fn add_port(gw: &mut Gateway, ifname: &str, vni: u32) -> Result<()> {
    if gw.vni_followed(vni) {
        return Err(GatewayError::FollowedVni(vni).into());
    }
    attach_port(gw, ifname, vni)
}

/// [`add_port`] without the ownership check: for the follower, which makes
/// the ports of a followed bridge access ports of its VNI.
pub fn attach_port(gw: &mut Gateway, ifname: &str, vni: u32) -> Result<()> {
    let ifindex =
        iface::ifindex(ifname).ok_or_else(|| GatewayError::NoSuchInterface(ifname.into()))?;
    let was_port = gw.port_vni(ifindex).is_some();
    gw.port_set(ifindex, ifname, vni)?;
    if let Err(e) = loader::attach(&gw.pins, ifname, ifindex, Role::AccessPort) {
        if !was_port {
            let _ = gw.port_del_index(ifindex, ifname);
        }
        return Err(e);
    }
    if !gw.xdp_tx(ifindex) {
        enable_xdp_tx(gw, ifname, ifindex)?;
    }
    Ok(())
}

/// Prepares the far end of `ifname` (see [`iface::prepare_veth_peer`]) and,
/// when it can take XDP frames, lets XDP redirect into it. Returns whether
/// it does.
pub fn enable_xdp_tx(gw: &mut Gateway, ifname: &str, ifindex: u32) -> Result<bool> {
    let ready = match iface::prepare_veth_peer(ifindex) {
        Ok(FarEnd::NotVeth | FarEnd::VethPrepared) => true,
        Ok(FarEnd::VethDown) => {
            log::info!("{ifname}: its veth peer is down; XDP delivery starts when it comes up");
            false
        }
        Err(e) => {
            log::warn!(
                "{ifname}: its veth peer could not be prepared for XDP ({e:#}); \
                 frames for it take the TC (skb) path"
            );
            false
        }
    };
    gw.set_xdp_tx(ifindex, ready)?;
    Ok(ready)
}

/// Interfaces whose XDP delivery could not be set up, until their link
/// changes (so a failure is logged once, not every second).
#[derive(Default)]
pub struct DeliveryState {
    failed: std::collections::BTreeSet<u32>,
}

/// Follows the far ends of the uplink and the access ports: a veth peer
/// that goes down leaves the XDP redirect map (GRO must be set up again
/// when it comes back), one that comes up is prepared and joins it.
pub fn refresh_xdp_delivery(
    gw: &mut Gateway,
    rtnl: &mut Rtnl,
    state: &mut DeliveryState,
    uplink: u32,
) {
    let mut ifaces: Vec<u32> = gw.port_list().into_iter().map(|(i, _)| i).collect();
    ifaces.push(uplink);
    for ifindex in ifaces {
        let Ok(carrier) = rtnl.link_carrier(ifindex) else {
            continue;
        };
        let in_map = gw.xdp_tx(ifindex);
        let name = iface::ifname(ifindex).unwrap_or_else(|| format!("if{ifindex}"));
        if !carrier {
            state.failed.remove(&ifindex);
            if in_map {
                log::info!("{name}: far end down; frames for it take the TC path");
                let _ = gw.set_xdp_tx(ifindex, false);
            }
        } else if !in_map && !state.failed.contains(&ifindex) {
            match enable_xdp_tx(gw, &name, ifindex) {
                Ok(true) => log::info!("{name}: far end up; XDP delivery on"),
                Ok(false) | Err(_) => {
                    state.failed.insert(ifindex);
                }
            }
        }
    }
}

/// Resolves the outer next hop of every remote VTEP the gateway sends to,
/// into `NEIGH` (the datapath's next hops when `bpf_fib_lookup` cannot
/// answer): the kernel's route, then its neighbour entry for the gateway
/// or the VTEP. A next hop the kernel has not resolved gets a managed
/// neighbour entry, so the kernel resolves it and keeps it resolved; until
/// then the datapath hands those frames to the kernel (`no-neighbour`).
pub fn resolve_neighbours(gw: &mut Gateway, rtnl: &mut Rtnl, ul: &Underlay) {
    let vteps = gw.remote_vteps();
    for vtep in &vteps {
        let hop = match rtnl.route_get(*vtep) {
            Ok(route) if route.oif == ul.uplink_ifindex => route,
            Ok(route) => {
                log::warn!(
                    "remote VTEP {vtep} is routed out of interface {}, not the uplink: \
                     its traffic goes through the kernel",
                    route.oif
                );
                gw.neigh_del(*vtep);
                continue;
            }
            Err(e) => {
                log::debug!("remote VTEP {vtep}: {e}");
                gw.neigh_del(*vtep);
                continue;
            }
        };
        match rtnl.neighbour(hop.next_hop, hop.oif) {
            Ok(Some(dmac)) => {
                let entry = NeighEntry {
                    dmac,
                    smac: ul.uplink_mac,
                    ifindex: hop.oif,
                };
                if let Err(e) = gw.neigh_set(*vtep, &entry) {
                    log::warn!("next hop of {vtep}: {e}");
                }
            }
            Ok(None) => {
                gw.neigh_del(*vtep);
                if let Err(e) = rtnl.neigh_managed(hop.next_hop, hop.oif) {
                    log::debug!("managed neighbour {}: {e}", hop.next_hop);
                }
            }
            Err(e) => log::debug!("neighbour {}: {e}", hop.next_hop),
        }
    }
    for stale in gw.neigh_keys() {
        if !vteps.contains(&stale) {
            gw.neigh_del(stale);
        }
    }
}

/// Follows changes of the uplink that the datapath depends on: its MAC, its
/// MTU, and whether forwarding is on (which decides `bpf_fib_lookup`).
pub fn refresh_underlay(gw: &mut Gateway, rtnl: &mut Rtnl, ul: &mut Underlay, uplink: &str) {
    let Ok((mac, mtu)) = rtnl.link_mac_mtu(ul.uplink_ifindex) else {
        return;
    };
    let mut now = *ul;
    now.uplink_mac = mac;
    now.mtu = mtu.min(u32::from(u16::MAX)) as u16;
    now.flags &= !UNDERLAY_F_FIB;
    if iface::ipv4_forwarding(uplink) {
        now.flags |= UNDERLAY_F_FIB;
    }
    if now != *ul {
        log::info!(
            "uplink {uplink} changed: mtu {}, forwarding {}",
            now.mtu,
            if now.flags & UNDERLAY_F_FIB != 0 {
                "on (bpf_fib_lookup)"
            } else {
                "off"
            }
        );
        match gw.set_underlay(&now) {
            Ok(()) => *ul = now,
            Err(e) => log::warn!("updating the underlay: {e}"),
        }
    }
}

/// Removes access ports whose interface is gone (a deleted container's
/// veth), with their FDB entries.
pub fn forget_vanished_ports(gw: &mut Gateway) {
    for (ifindex, vni) in gw.port_list() {
        if iface::ifname(ifindex).is_none() {
            log::info!("access port {ifindex} of VNI {vni} is gone; removing it");
            if let Err(e) = gw.port_del_index(ifindex, &format!("if{ifindex}")) {
                log::warn!("removing vanished port {ifindex}: {e}");
            }
        }
    }
}
