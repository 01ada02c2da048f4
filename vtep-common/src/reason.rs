//! Why a packet was not forwarded the ordinary way.
//!
//! Every outcome other than "forwarded" has a reason, counted per CPU in the
//! `REASONS` map at index `reason as u32`. Some reasons are drops, some are
//! hand-offs to the kernel (the packet is not lost); [`Reason::is_drop`] says
//! which. The CLI prints [`Reason::name`].
//!
//! The eBPF programs carry a reason as the `Err` of their per-packet
//! functions (`Result<u32, Reason>`, as Cilium's `DROP_*` codes); the entry
//! point counts it once and gives the verdict its [`Outcome`] says: a drop,
//! or a pass to the host or the TC program. A not-learned reason is counted
//! where learning gives up, the frame still forwarded.

/// The one table of reasons: variant, code (its index in `REASONS`, never
/// reused), the name the CLI prints (kebab-case, as iproute2's counters) and
/// the [`Outcome`]. New reasons go at the end.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $outcome:ident;)*) => {
        /// A reason code. `#[repr(u32)]` so it can index the `REASONS`
        /// per-CPU array.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Reason {
            $($(#[$doc])* $variant = $code,)*
        }

        /// Number of reason codes: the size of the `REASONS` array.
        pub const REASON_COUNT: u32 = [$($code),*].len() as u32;

        impl Reason {
            /// Every reason, in code order.
            pub const ALL: [Reason; REASON_COUNT as usize] = [$(Reason::$variant),*];

            /// The name the CLI prints, in the kebab-case of iproute2's
            /// counters.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }

            /// What happens to a packet counted under this reason.
            #[inline(always)]
            pub const fn outcome(self) -> Outcome {
                match self {
                    $(Reason::$variant => Outcome::$outcome,)*
                }
            }
        }
    };
}

reasons! {
    /// Uplink: not VXLAN for this gateway (other traffic of the host); passed.
    NotVxlan = 0, "not-vxlan", Passed;
    /// VXLAN header without the I flag.
    BadFlags = 1, "bad-flags", Dropped;
    /// VXLAN for a VNI this gateway does not carry.
    UnknownVni = 2, "unknown-vni", Dropped;
    /// A header is cut short, or lengths disagree with the frame.
    Truncated = 3, "truncated", Dropped;
    /// A fragmented VXLAN packet (VTEPs send with DF; we do not reassemble).
    Fragment = 4, "fragment", Dropped;
    /// IPv4 header with a wrong version or IHL < 5.
    BadIpHeader = 5, "bad-ip-header", Dropped;
    /// Outer source is not a known remote VTEP of the VNI (when checked).
    UnknownSourceVtep = 6, "unknown-source-vtep", Dropped;
    /// No route to the remote VTEP (FIB lookup failed).
    NoRoute = 7, "no-route", Dropped;
    /// No neighbour entry for the next hop yet: the kernel resolves it and
    /// sends the frame (not a drop).
    NoNeighbour = 8, "no-neighbour", HandedOff;
    /// Per-VNI `maxaddress` reached: the source MAC was not learned (the
    /// frame is still forwarded).
    LearningLimit = 9, "learning-limit", NotLearned;
    /// The FDB map is full: the source MAC was not learned (frame forwarded).
    FdbFull = 10, "fdb-full", NotLearned;
    /// Frame on an interface that is not a configured access port.
    NoPort = 11, "no-port", Dropped;
    /// Redirect to the output device failed.
    RedirectFailed = 12, "redirect-failed", Dropped;
    /// Destination is the port the frame came in on (bridge hairpin rule).
    Hairpin = 13, "hairpin", Dropped;
    /// Encapsulated frame larger than the uplink MTU.
    MtuExceeded = 14, "mtu-exceeded", Dropped;
    /// Multicast or all-zeros source MAC.
    BadSourceMac = 15, "bad-source-mac", Dropped;
    /// A frame from the underlay for a MAC behind another remote VTEP
    /// (split horizon: never sent back to the underlay).
    SplitHorizon = 16, "split-horizon", Dropped;
    /// The underlay is not configured yet (no `UNDERLAY` entry).
    NoUnderlay = 17, "no-underlay", Dropped;
    /// A flood copy could not be made (clone or store failed).
    FloodFailed = 18, "flood-failed", Dropped;
    /// Frame handed to TC for flooding (informational, not a drop).
    Flooded = 19, "flooded", HandedOff;
    /// VLAN-tagged frame on an access port with no VNI for that VLAN.
    UnknownVlan = 20, "unknown-vlan", Dropped;
    /// Frame to deliver over the skb path (the port's peer cannot take XDP
    /// frames), handed to TC (informational, not a drop).
    SkbDelivery = 21, "skb-delivery", HandedOff;
    /// In a followed VNI (`[follow]`): a frame the mirrored tables do not
    /// decide (broadcast, multicast, unknown destination, VXLAN of a VNI
    /// vtep does not carry) passed untouched to the kernel's vxlan device and
    /// bridge, which forward it (not a drop).
    KernelFallback = 22, "kernel-fallback", Passed;
    /// In a followed VNI: a frame passed untouched to the kernel so that its
    /// bridge (or learning vxlan device) learns the source MAC (new, or
    /// moved) or refreshes it, once a second per MAC: a frame vtep forwards
    /// never reaches the bridge, whose entry would age out, and EVPN would
    /// withdraw the MAC (not a drop).
    BridgeRefresh = 23, "bridge-refresh", Passed;
    /// XDP metadata in front of a frame with an action no TC program knows.
    UnknownMeta = 24, "unknown-meta", Dropped;
    /// Decap: removing the outer headers (`bpf_xdp_adjust_head`/`_tail`)
    /// failed.
    StripFailed = 25, "strip-failed", Dropped;
    /// AF_XDP engine: a frame its steering program sent it that is not
    /// VXLAN for this VTEP (any more: the underlay changed in between). The
    /// engine cannot give it back to the host: freed.
    StaleSteering = 26, "stale-steering", Dropped;
    /// Decap (RFC 6040): the outer header says congestion (CE) but the
    /// inner packet is not ECN-capable: dropped, as the kernel's vxlan
    /// driver drops it (`SKB_DROP_REASON_IP_TUNNEL_ECN`).
    EcnError = 27, "ecn-error", Dropped;
    /// Uplink: an IPv6 packet to this VTEP whose extension headers are not
    /// walked (a kind vtep does not parse, a fragment, or a chain longer than
    /// it follows): dropped, never misparsed.
    Ipv6ExtHeader = 28, "ipv6-ext-header", Dropped;
    /// Uplink: VXLAN over IPv6 with a zero UDP checksum, where the underlay
    /// does not accept them (`udp6zerocsumrx`, RFC 6935).
    Udp6ZeroCsum = 29, "udp6-zero-csum", Dropped;
    /// Uplink: VXLAN to a multicast group that is not the group of its VNI.
    UnknownGroup = 30, "unknown-group", Dropped;
    /// A flood copy to a remote VTEP whose next hop is not resolved yet,
    /// handed to the kernel's neighbour resolution (which queues it, as for
    /// unicast `no-neighbour`): not a drop.
    FloodNoNeighbour = 31, "flood-no-neighbour", HandedOff;
    /// Encap: the frame was too large for the uplink once encapsulated
    /// (counted under `mtu-exceeded`), and an ICMP "fragmentation needed" /
    /// ICMPv6 "packet too big" with the inner MTU went back to its sender.
    PmtuSent = 32, "pmtu-sent", Answered;
}

impl Reason {
    /// True when a packet counted under this reason is dropped.
    #[inline(always)]
    pub const fn is_drop(self) -> bool {
        matches!(self.outcome(), Outcome::Dropped)
    }

    /// The reason with this code, if any.
    pub const fn from_code(code: u32) -> Option<Reason> {
        if code < REASON_COUNT {
            Some(Reason::ALL[code as usize])
        } else {
            None
        }
    }
}

/// What became of a packet counted under a [`Reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Dropped.
    Dropped,
    /// Passed to the host's own networking, untouched: not vtep's traffic,
    /// or (in a followed VNI) the kernel's vxlan device and bridge forward it.
    Passed,
    /// Handed to the TC program or the kernel to finish (flood, neighbour
    /// resolution, skb delivery): still forwarded.
    HandedOff,
    /// Forwarded, but its source MAC was not learned.
    NotLearned,
    /// Answered by vtep itself, back out of the port it came from (an ICMP
    /// error for a frame counted under its drop reason too): the frame
    /// goes no further, and this is not a fault.
    Answered,
}

impl Outcome {
    /// The word the CLI prints.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Dropped => "drop",
            Outcome::Passed => "pass",
            Outcome::HandedOff => "handoff",
            Outcome::NotLearned => "not-learned",
            Outcome::Answered => "answered",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_positions() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as u32, i as u32, "{} is out of order", r.name());
            assert_eq!(Reason::from_code(i as u32), Some(*r));
        }
        assert_eq!(Reason::from_code(REASON_COUNT), None);
    }

    #[test]
    fn names_are_unique_kebab_case() {
        for (i, a) in Reason::ALL.iter().enumerate() {
            assert!(
                a.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            for b in &Reason::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn handoffs_are_not_drops() {
        assert!(!Reason::NoNeighbour.is_drop());
        assert!(!Reason::Flooded.is_drop());
        assert!(!Reason::NotVxlan.is_drop());
        assert!(!Reason::LearningLimit.is_drop());
        assert!(!Reason::KernelFallback.is_drop());
        assert!(!Reason::BridgeRefresh.is_drop());
        assert!(Reason::UnknownVni.is_drop());
        assert!(Reason::Truncated.is_drop());
    }
}
