//! Flood lists (`FLOOD`): the remote VTEPs that get a VNI's BUM traffic.

use vtep_common::ListFull;

use super::*;

impl Gateway {
    pub fn flood_list(&self, vni: u32) -> Vec<IpAddr> {
        self.flood
            .get(&vni, 0)
            .map(|l| l.members().iter().filter_map(from_vtep).collect())
            .unwrap_or_default()
    }

    /// `bridge fdb append 00:00:00:00:00:00 ... dst IP`.
    pub fn flood_add(&mut self, vni: u32, dst: IpAddr) -> Result<()> {
        self.vni_info(vni)?;
        check::flood_add(self, vni, dst)?;
        let mut list = self.flood.get(&vni, 0).unwrap_or_default();
        list.push(to_vtep(dst))
            .map_err(|ListFull| GatewayError::FloodListFull(vni))?;
        self.flood
            .insert(vni, list, 0)
            .map_err(map_err(names::FLOOD))
    }

    /// `bridge fdb del 00:00:00:00:00:00 ... [dst IP]`: one member, or with
    /// no `dst` the whole list.
    pub fn flood_del(&mut self, vni: u32, dst: Option<IpAddr>) -> Result<()> {
        self.vni_info(vni)?;
        check::flood_del(self, vni, dst)?;
        let Some(d) = dst else {
            return self.flood_set(vni, &[]);
        };
        let mut list = self.flood.get(&vni, 0).unwrap_or_default();
        list.remove(&to_vtep(d));
        self.flood
            .insert(vni, list, 0)
            .map_err(map_err(names::FLOOD))
    }

    /// Sets the whole flood list of `vni`.
    pub fn flood_set(&mut self, vni: u32, members: &[VtepAddr]) -> Result<()> {
        let mut list = FloodList::default();
        for m in members {
            list.push(*m)
                .map_err(|ListFull| GatewayError::FloodListFull(vni))?;
        }
        self.flood
            .insert(vni, list, 0)
            .map_err(map_err(names::FLOOD))
    }
}
