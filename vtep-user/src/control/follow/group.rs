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

/// Sets (`Some`) or removes (`None`) the group of `vni`; a group already
/// there, or one already absent, is not a change.
pub(super) fn set_vni_group(
    gw: &Gateway,
    vni: u32,
    group: Option<VtepAddr>,
) -> Result<bool, String> {
    let mut map = vni_group_map(gw)?;
    let now = map.get(&vni, 0).ok();
    if now == group {
        return Ok(false);
    }
    match group {
        Some(g) => map.insert(vni, g, 0).map_err(|e| e.to_string())?,
        None => match map.remove(&vni) {
            Ok(()) | Err(MapError::KeyNotFound | MapError::ElementNotFound) => {}
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e.to_string()),
        },
    }
    Ok(true)
}

/// The group to mirror of the groups the kernel has for a VNI: the first
/// (lowest) one; vtep carries one group per VNI.
pub(super) fn first_group(groups: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    groups.iter().next().copied()
}

impl Follower {
    /// Makes `VNI_GROUP[vni]` the first of `groups` (none: removed).
    pub(super) fn write_group(&mut self, gw: &mut Gateway, vni: u32, groups: &BTreeSet<IpAddr>) {
        let group = first_group(groups);
        if groups.len() > 1 {
            let all: Vec<String> = groups.iter().map(ToString::to_string).collect();
            self.warn_once(format!(
                "VNI {vni}: groups {}; vtep carries one group per VNI, {} (VXLAN to the others \
                 takes the kernel path)",
                all.join(", "),
                group.map_or_else(String::new, |g| g.to_string())
            ));
        }
        match set_vni_group(gw, vni, group.map(to_vtep)) {
            Ok(true) => match group {
                Some(g) => log::info!("follow: VNI {vni}: group {g}"),
                None => log::info!("follow: VNI {vni}: no group"),
            },
            Ok(false) => {}
            Err(e) => self.warn_once(format!(
                "VNI {vni}: writing its group into {}: {e} (the group's VXLAN takes the kernel \
                 path)",
                names::VNI_GROUP
            )),
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
