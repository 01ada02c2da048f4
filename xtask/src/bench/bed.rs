//! The bench's test bed: three namespaces per contender, and the gateway in
//! the middle one switching with the contender.
//!
//! ```text
//!  <p>-C-t                   <p>-C-g (gateway: the contender)            <p>-C-u
//!  [eth0]──────────────[access]   kernel vxlan+bridge | vtep   [uplink]──────────────[eth0]
//!  tenant side: 02:..:01:01        VNI 100, VTEP 198.18.0.1            underlay side: 198.18.0.2
//! ```
//!
//! Encap: `vtep pktgen` in `t` sends tenant frames (to a MAC behind the remote
//! VTEP 198.18.0.2) into the access port; the sink in `u` counts the VXLAN
//! packets. Decap: `vtep pktgen --vxlan` in `u` sends VXLAN packets from
//! 198.18.0.2 to the uplink; the sink in `t` counts the inner frames. The
//! remote VTEP's neighbour entry is permanent, so nothing is resolved while
//! a cell runs. Every veth has one queue per CPU, so each sending thread's
//! frames are processed on its own CPU all along the chain.
//!
//! Over an IPv6 underlay ([`Family::V6`]: a bed of its own, since a kernel
//! vxlan device has one local address) the VTEPs are 2001:db8::1 and
//! 2001:db8::2 and the underlay carries 70 bytes per frame, not 50.

use std::path::Path;

use std::time::Duration;

use vtep_tests::lab::{self, Daemon, Host, Lab, Netns, Proc, VniConfig, VtepConfig};

pub const VNI: u32 = 100;
pub const LOCAL_VTEP: &str = "198.18.0.1";
pub const REMOTE_VTEP: &str = "198.18.0.2";
pub const LOCAL_VTEP6: &str = "2001:db8::1";
pub const REMOTE_VTEP6: &str = "2001:db8::2";
/// The tenant side's interface (a workload behind the access port).
pub const TENANT_MAC: &str = "02:00:00:00:01:01";
pub const TENANT_IP: &str = "192.0.2.1";
/// A workload behind the remote VTEP.
pub const REMOTE_WORKLOAD_MAC: &str = "02:00:00:00:04:01";
pub const REMOTE_WORKLOAD_IP: &str = "192.0.2.2";
pub const ACCESS_MAC: &str = "02:00:00:00:02:01";
pub const UPLINK_MAC: &str = "02:00:00:00:02:02";
/// The underlay side's interface: the remote VTEP (or its router).
pub const UNDERLAY_MAC: &str = "02:00:00:00:03:01";
/// Underlay MTU: room for a 1500-byte tenant frame plus the 50 (IPv4) or
/// 70 (IPv6) bytes of VXLAN.
pub const UNDERLAY_MTU: u32 = 1600;

/// The underlay's address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Family {
    #[serde(rename = "ipv4")]
    V4,
    #[serde(rename = "ipv6")]
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// This VTEP's address and the remote VTEP's.
    pub fn vteps(self) -> (&'static str, &'static str) {
        match self {
            Family::V4 => (LOCAL_VTEP, REMOTE_VTEP),
            Family::V6 => (LOCAL_VTEP6, REMOTE_VTEP6),
        }
    }
}

/// What forwards in the gateway namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// Linux vxlan device in a bridge with the access port.
    Kernel,
    /// vtep, XDP engine.
    Xdp,
    /// vtep, AF_XDP engine (`vtep run --engine afxdp`).
    Afxdp,
    /// Not a gateway: XDP redirecting every frame to the other port,
    /// untouched (`vtep pktgen forward`), the least an XDP gateway does. Its
    /// rate is what the lab itself allows.
    Ceiling,
    /// Not a gateway: AF_XDP sockets moving every frame to the other port,
    /// untouched (`vtep pktgen forward --xsk`), on the AF_XDP engine's
    /// sockets, rings, batches and CPU. Its rate is what AF_XDP itself
    /// allows here, the AF_XDP engine's ceiling.
    AfxdpCeiling,
}

impl Contender {
    pub const ALL: [Contender; 3] = [Contender::Kernel, Contender::Xdp, Contender::Afxdp];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Kernel => "kernel",
            Contender::Xdp => "xdp",
            Contender::Afxdp => "afxdp",
            Contender::Ceiling => "ceiling",
            Contender::AfxdpCeiling => "afxdp-ceiling",
        }
    }

    /// Its namespaces' prefix.
    fn tag(self) -> &'static str {
        match self {
            Contender::Kernel => "k",
            Contender::Xdp => "x",
            Contender::Afxdp => "a",
            Contender::Ceiling => "c",
            Contender::AfxdpCeiling => "ac",
        }
    }

    /// What the table says about it.
    pub fn title(self) -> &'static str {
        match self {
            Contender::Kernel => "Linux vxlan + bridge",
            Contender::Xdp => "vtep XDP engine",
            Contender::Afxdp => "vtep AF_XDP engine",
            Contender::Ceiling => "XDP redirect only (lab ceiling)",
            Contender::AfxdpCeiling => "AF_XDP forward only (AF_XDP ceiling)",
        }
    }
}

/// One contender's three namespaces, its gateway up.
pub struct Bed {
    pub contender: Contender,
    pub family: Family,
    pub tenant: Netns,
    _gateway: Netns,
    pub underlay: Netns,
    /// vtep's daemon, or a ceiling's forwarder (stopped with the bed).
    _daemon: Option<Daemon>,
    _forwarder: Option<Proc>,
}

/// Creates a veth pair: `a` in `ns_a`, `b` in `ns_b`, one queue per CPU.
fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str, queues: usize) {
    lab::run_ok(&format!(
        "ip link add {a} netns {} numtxqueues {queues} numrxqueues {queues} type veth \
         peer name {b} netns {} numtxqueues {queues} numrxqueues {queues}",
        ns_a.name, ns_b.name
    ));
}

impl Bed {
    /// Builds the namespaces of `contender` over a `family` underlay in
    /// `lab` and starts its gateway.
    pub fn new(lab: &Lab, contender: Contender, family: Family, queues: usize) -> Bed {
        let c = match family {
            Family::V4 => contender.tag().to_owned(),
            Family::V6 => format!("{}6", contender.tag()),
        };
        let tenant = lab.netns(&format!("{c}-t"));
        let gateway = lab.netns(&format!("{c}-g"));
        let underlay = lab.netns(&format!("{c}-u"));
        veth(&tenant, "eth0", &gateway, "access", queues);
        veth(&gateway, lab::UPLINK, &underlay, "eth0", queues);
        // The tenant side's MTU (and the access port's) matters only to the
        // ceiling, which forwards the 1550-byte VXLAN frames of decap untouched.
        tenant.ip(&format!(
            "link set eth0 address {TENANT_MAC} mtu {UNDERLAY_MTU} up"
        ));
        tenant.ip(&format!("addr add {TENANT_IP}/24 dev eth0"));
        underlay.ip(&format!(
            "link set eth0 address {UNDERLAY_MAC} mtu {UNDERLAY_MTU} up"
        ));
        let (local, remote) = family.vteps();
        let prefix = match family {
            Family::V4 => 24,
            Family::V6 => {
                for (ns, dev) in [(&underlay, "eth0"), (&gateway, lab::UPLINK)] {
                    ns.exec_ok(&format!(
                        "sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=0 \
                         net.ipv6.conf.{dev}.accept_ra=0"
                    ));
                }
                64
            }
        };
        let nodad = if family == Family::V6 { " nodad" } else { "" };
        underlay.ip(&format!("addr add {remote}/{prefix} dev eth0{nodad}"));
        gateway.ip(&format!("link set access address {ACCESS_MAC} up"));
        gateway.ip(&format!(
            "link set {} address {UPLINK_MAC} mtu {UNDERLAY_MTU} up",
            lab::UPLINK
        ));
        gateway.ip(&format!(
            "addr add {local}/{prefix} dev {}{nodad}",
            lab::UPLINK
        ));
        gateway.ip(&format!(
            "neigh replace {remote} lladdr {UNDERLAY_MAC} dev {} nud permanent",
            lab::UPLINK
        ));
        let (daemon, forwarder) = match contender {
            Contender::Kernel => {
                kernel_gateway(&gateway, family);
                (None, None)
            }
            Contender::Xdp | Contender::Afxdp => {
                (Some(vtep_gateway(lab, &gateway, contender, family)), None)
            }
            Contender::Ceiling | Contender::AfxdpCeiling => {
                // It forwards decap's 1550-byte VXLAN frames untouched.
                gateway.ip(&format!("link set access mtu {UNDERLAY_MTU}"));
                (None, Some(forwarder(&gateway, contender)))
            }
        };
        Bed {
            contender,
            family,
            tenant,
            _gateway: gateway,
            underlay,
            _daemon: daemon,
            _forwarder: forwarder,
        }
    }
}

/// The kernel's VTEP: `vxlan100` (no learning, `local` of the bed's
/// family) and the access port in bridge `br100`, static entries for both
/// workloads, GRO on the gateway's ports (a veth takes the generator's XDP
/// frames only with GRO or an XDP program on the receiving end).
fn kernel_gateway(g: &Netns, family: Family) {
    let ul = lab::UPLINK;
    let (local, remote) = family.vteps();
    g.ip(&format!(
        "link add vxlan{VNI} type vxlan id {VNI} local {local} dstport {} nolearning dev {ul}",
        lab::VXLAN_PORT
    ));
    g.ip(&format!("link set vxlan{VNI} mtu 1500"));
    g.ip(&format!("link add br{VNI} type bridge"));
    g.ip(&format!("link set vxlan{VNI} master br{VNI} up"));
    g.ip(&format!("link set access master br{VNI}"));
    g.ip(&format!("link set br{VNI} up"));
    g.bridge(&format!(
        "fdb add {REMOTE_WORKLOAD_MAC} dev vxlan{VNI} dst {remote} self permanent"
    ));
    g.bridge(&format!(
        "fdb add {REMOTE_WORKLOAD_MAC} dev vxlan{VNI} master static"
    ));
    g.bridge(&format!("fdb add {TENANT_MAC} dev access master static"));
    g.exec_ok("ethtool -K access gro on");
    g.exec_ok(&format!("ethtool -K {ul} gro on"));
}

/// vtep in the gateway namespace: VNI 100 on the access port, static
/// entries for both workloads, the remote VTEP in the flood list, over the
/// bed's family.
fn vtep_gateway(lab: &Lab, g: &Netns, contender: Contender, family: Family) -> Daemon {
    let (local, remote) = family.vteps();
    let config = VtepConfig::new(local)
        .vni(VniConfig::new(VNI).port("access").flood([remote]))
        .fdb_remote(REMOTE_WORKLOAD_MAC, VNI, remote)
        .fdb_local(TENANT_MAC, VNI, "access");
    let host = Host {
        n: 1,
        netns: g.clone(),
        underlay_ip: local.to_owned(),
        pin_path: Path::new(lab::PIN_ROOT).join(&g.name),
        cli: None,
    };
    let text = match contender {
        Contender::Afxdp => format!(
            "engine = \"afxdp\"\n[afxdp]\ncpu = {}\n{config}",
            afxdp_cpu()
        ),
        _ => config.to_string(),
    };
    lab.start_vtep(&host, text)
}

/// The CPU of the AF_XDP engine's worker, and of the AF_XDP ceiling's: the
/// last; the generator starts on CPU 0 (and veth runs the receiving side
/// on the sender's CPU).
fn afxdp_cpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

/// `vtep pktgen forward access uplink` in the gateway namespace (through
/// AF_XDP on the engine's CPU for the AF_XDP ceiling), once it forwards.
fn forwarder(g: &Netns, contender: Contender) -> Proc {
    let vtep = lab::vtep_bin();
    let xsk = match contender {
        Contender::AfxdpCeiling => format!(" --xsk --cpu {}", afxdp_cpu()),
        _ => String::new(),
    };
    let mut proc = g.spawn_as(
        "forward",
        &format!(
            "{} pktgen forward{xsk} access {}",
            vtep.display(),
            lab::UPLINK
        ),
    );
    let up = lab::wait_until(Duration::from_secs(10), || {
        proc.output().contains("forwarding")
    });
    if !up {
        proc.stop();
        panic!("vtep pktgen forward did not start: {}", proc.output());
    }
    proc
}
