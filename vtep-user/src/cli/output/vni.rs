//! `vtep vni show` and `vtep port show`.
//!
//! ```text
//! vni 100 group 239.1.1.1 learning on ageing 300 maxaddress 0 check_source off learned 2 followed off
//!     ports t1w1 t1w2
//!     flood 198.18.0.2 198.18.0.3
//! t1w1 ifindex 7 vni 100 delivery xdp
//! ```

use std::{
    io::{self, Write},
    net::IpAddr,
};

use vtep_common::{VNI_F_CHECK_SOURCE, VNI_F_FOLLOWED, VNI_F_LEARNING, VniInfo};

use super::Printer;

/// A VNI as `vtep vni show` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VniRow {
    pub vni: u32,
    pub info: VniInfo,
    /// Its access ports, by name.
    pub ports: Vec<String>,
    pub flood: Vec<IpAddr>,
    /// Its multicast group, if it has one.
    pub group: Option<IpAddr>,
    pub learned: u64,
}

/// `vtep vni show`: a line per VNI, and its ports and flood list under it.
pub fn show<W: Write>(p: &mut Printer<W>, rows: &[VniRow]) -> io::Result<()> {
    p.open_array(None)?;
    for r in rows {
        let flags = r.info.flags;
        p.open_object(None)?;
        p.uint("vni", "vni {}", r.vni.into())?;
        p.opt_str("group", "group {}", r.group)?;
        p.on_off("learning", "learning {}", flags & VNI_F_LEARNING != 0)?;
        p.uint("ageing", "ageing {}", r.info.ageing_secs.into())?;
        p.uint("maxaddress", "maxaddress {}", r.info.max_addresses.into())?;
        p.on_off(
            "check_source",
            "check_source {}",
            flags & VNI_F_CHECK_SOURCE != 0,
        )?;
        p.uint("learned", "learned {}", r.learned)?;
        // Mirrored from a kernel vxlan device ([follow]).
        p.on_off("followed", "followed {}", flags & VNI_F_FOLLOWED != 0)?;
        p.nl()?;
        p.indent()?;
        p.list("ports", "ports {}", &r.ports)?;
        p.nl()?;
        p.indent()?;
        p.list("flood", "flood {}", &r.flood)?;
        p.nl()?;
        p.close_object()?;
    }
    p.close_array()
}

/// One access port, as `vtep port show` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRow {
    pub ifname: String,
    pub ifindex: u32,
    pub vni: u32,
    /// XDP redirects into it (else frames for it take the TC path).
    pub xdp_redirect: bool,
}

/// `vtep port show`: a line per access port.
pub fn ports<W: Write>(p: &mut Printer<W>, rows: &[PortRow]) -> io::Result<()> {
    p.open_array(None)?;
    for r in rows {
        p.open_object(None)?;
        p.str("ifname", "{}", &r.ifname)?;
        p.uint("ifindex", "ifindex {}", r.ifindex.into())?;
        p.uint("vni", "vni {}", r.vni.into())?;
        let delivery = if r.xdp_redirect { "xdp" } else { "tc" };
        p.str("delivery", "delivery {}", delivery)?;
        p.nl()?;
        p.close_object()?;
    }
    p.close_array()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::output::printer::tests::printed;

    fn vnis() -> Vec<VniRow> {
        let info = |flags, ageing_secs, max_addresses| VniInfo {
            flags,
            max_addresses,
            ageing_secs,
            _pad: 0,
        };
        vec![
            // Every setting on, with ports and a flood list.
            VniRow {
                vni: 100,
                info: info(VNI_F_LEARNING | VNI_F_CHECK_SOURCE, 300, 1024),
                ports: vec!["t1w1".into(), "t1w2".into()],
                flood: vec!["198.18.0.2".parse().unwrap(), "198.18.0.3".parse().unwrap()],
                group: Some("239.1.1.1".parse().unwrap()),
                learned: 2,
            },
            // Every setting off, nothing in it.
            VniRow {
                vni: 200,
                info: info(0, 0, 0),
                ports: vec![],
                flood: vec![],
                group: None,
                learned: 0,
            },
            // Followed, the kernel's device learning.
            VniRow {
                vni: 300,
                info: info(VNI_F_FOLLOWED | VNI_F_LEARNING, 0, 0),
                ports: vec!["t3w1".into()],
                flood: vec!["198.18.0.4".parse().unwrap()],
                group: Some("ff05::100".parse().unwrap()),
                learned: 0,
            },
        ]
    }

    #[test]
    fn vni_text_lines() {
        assert_eq!(
            printed(false, |p| show(p, &vnis())),
            "\
vni 100 group 239.1.1.1 learning on ageing 300 maxaddress 1024 check_source on learned 2 followed off
    ports t1w1 t1w2
    flood 198.18.0.2 198.18.0.3
vni 200 group - learning off ageing 0 maxaddress 0 check_source off learned 0 followed off
    ports -
    flood -
vni 300 group ff05::100 learning on ageing 0 maxaddress 0 check_source off learned 0 followed on
    ports t3w1
    flood 198.18.0.4
"
        );
    }

    #[test]
    fn vni_json() {
        assert_eq!(
            printed(true, |p| show(p, &vnis())),
            concat!(
                "[",
                r#"{"vni":100,"group":"239.1.1.1","learning":true,"ageing":300,"maxaddress":1024,"check_source":true,"learned":2,"followed":false,"ports":["t1w1","t1w2"],"flood":["198.18.0.2","198.18.0.3"]},"#,
                r#"{"vni":200,"group":null,"learning":false,"ageing":0,"maxaddress":0,"check_source":false,"learned":0,"followed":false,"ports":[],"flood":[]},"#,
                r#"{"vni":300,"group":"ff05::100","learning":true,"ageing":0,"maxaddress":0,"check_source":false,"learned":0,"followed":true,"ports":["t3w1"],"flood":["198.18.0.4"]}"#,
                "]\n"
            )
        );
    }

    fn port_rows() -> Vec<PortRow> {
        vec![
            PortRow {
                ifname: "t1w1".into(),
                ifindex: 7,
                vni: 100,
                xdp_redirect: true,
            },
            PortRow {
                ifname: "t1w2".into(),
                ifindex: 9,
                vni: 200,
                xdp_redirect: false,
            },
        ]
    }

    #[test]
    fn port_text_lines() {
        assert_eq!(
            printed(false, |p| ports(p, &port_rows())),
            "t1w1 ifindex 7 vni 100 delivery xdp\nt1w2 ifindex 9 vni 200 delivery tc\n"
        );
    }

    #[test]
    fn port_json() {
        assert_eq!(
            printed(true, |p| ports(p, &port_rows())),
            concat!(
                "[",
                r#"{"ifname":"t1w1","ifindex":7,"vni":100,"delivery":"xdp"},"#,
                r#"{"ifname":"t1w2","ifindex":9,"vni":200,"delivery":"tc"}"#,
                "]\n"
            )
        );
    }

    #[test]
    fn nothing_to_list() {
        assert_eq!(printed(false, |p| show(p, &[])), "");
        assert_eq!(printed(true, |p| show(p, &[])), "[]\n");
        assert_eq!(printed(true, |p| ports(p, &[])), "[]\n");
    }
}
