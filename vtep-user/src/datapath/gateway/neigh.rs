//! Next hops of remote VTEPs (`NEIGH`), resolved by the daemon.

use super::*;

impl Gateway {
    pub fn neigh_set(&mut self, nh: IpAddr, n: &NeighEntry) -> Result<()> {
        self.neigh
            .insert(to_vtep(nh), n, 0)
            .map_err(map_err(names::NEIGH))
    }

    pub fn neigh_del(&mut self, nh: IpAddr) {
        let _ = self.neigh.remove(&to_vtep(nh));
    }

    pub fn neigh_keys(&self) -> Vec<IpAddr> {
        self.neigh
            .keys()
            .filter_map(|k| k.ok())
            .filter_map(|k| from_vtep(&k))
            .collect()
    }
}
