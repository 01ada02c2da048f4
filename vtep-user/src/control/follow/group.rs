//! The multicast group of a followed VNI (`VNI_GROUP`): a `group` device's
//! group, so that VXLAN sent to it is decapsulated on the fast path rather
//! than passed to the kernel as an unknown group.
//!
//! The group is written through the map's pin, as the gateway's other
//! readers of `VNI_GROUP` open it: a gateway pinned before the map existed
//! simply has no groups, and the kernel keeps receiving the group's traffic.

use std::{collections::BTreeSet, net::IpAddr};

use aya::maps::{HashMap, Map, MapData, MapError};
use vtep_common::{VtepAddr, names};

use super::Follower;
use crate::{datapath::gateway::Gateway, model::addr::to_vtep};

/// `VNI_GROUP` of `gw`, opened through its pin.
fn vni_group_map(gw: &Gateway) -> Result<HashMap<MapData, u32, VtepAddr>, String> {
    let path = gw.pins.map(names::VNI_GROUP);
    let data = MapData::from_pin(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Map::from_map_data(data)
        .and_then(HashMap::try_from)
        .map_err(|e| format!("{}: {e}", names::VNI_GROUP))
}

/// Sets (`Some`) or removes (`None`) the group of `vni`; nothing is
/// written when the map has it so already.
pub(super) fn set_vni_group(gw: &Gateway, vni: u32, group: Option<VtepAddr>) -> Result<(), String> {
    let mut map = vni_group_map(gw)?;
    if map.get(&vni, 0).ok() == group {
        return Ok(());
    }
    match group {
        Some(g) => map.insert(vni, g, 0).map_err(|e| e.to_string())?,
        None => match map.remove(&vni) {
            Ok(()) | Err(MapError::KeyNotFound | MapError::ElementNotFound) => {}
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e.to_string()),
        },
    }
    Ok(())
}

/// The group to mirror of the groups the kernel has for a VNI: the first
/// (lowest) one; vtep carries one group per VNI.
pub(super) fn first_group(groups: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    groups.iter().next().copied()
}

impl Follower {
    /// Makes `groups` the kernel's groups of `vni` and `VNI_GROUP[vni]` the
    /// first of them (none: removed); says in the log when the VNI's group
    /// changes.
    pub(super) fn set_groups(&mut self, gw: &mut Gateway, vni: u32, groups: BTreeSet<IpAddr>) {
        let before = self.groups.get(&vni).and_then(first_group);
        let group = first_group(&groups);
        if groups.len() > 1 {
            let all: Vec<String> = groups.iter().map(ToString::to_string).collect();
            self.warn_once(format!(
                "VNI {vni}: groups {}; vtep carries one group per VNI, {} (VXLAN to the others \
                 takes the kernel path)",
                all.join(", "),
                group.map_or_else(String::new, |g| g.to_string())
            ));
        }
        if let Err(e) = set_vni_group(gw, vni, group.map(to_vtep)) {
            self.warn_once(format!(
                "VNI {vni}: writing its group into {}: {e} (the group's VXLAN takes the kernel \
                 path)",
                names::VNI_GROUP
            ));
        }
        if before != group {
            match group {
                Some(g) => log::info!("follow: VNI {vni}: group {g}"),
                None => log::info!("follow: VNI {vni}: no group"),
            }
        }
        if groups.is_empty() {
            self.groups.remove(&vni);
        } else {
            self.groups.insert(vni, groups);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn the_lowest_group_is_mirrored() {
        let a = IpAddr::V4(Ipv4Addr::new(239, 1, 1, 1));
        let b = IpAddr::V4(Ipv4Addr::new(239, 1, 1, 2));
        let c = IpAddr::V6(Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x100));
        assert_eq!(first_group(&BTreeSet::new()), None);
        assert_eq!(first_group(&[b, a].into()), Some(a));
        assert_eq!(first_group(&[c, b].into()), Some(b));
    }
}
