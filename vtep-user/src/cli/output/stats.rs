//! `vtep stats`: traffic per VNI in the manner of `ip -s link`, and the
//! count of every reason a packet was not simply forwarded.
//!
//! ```text
//! vni 100
//!     RX: bytes packets   (decap, from the underlay)
//!     9800       100
//!     TX: bytes packets   (encap, to the underlay)
//!     9800       100
//!     local: bytes packets flooded
//!     0          0       2
//! reasons:
//!     not-vxlan                        12 pass
//! ```

use std::io::{self, Write};

use super::Printer;
use crate::datapath::gateway::Stats;

/// `vtep stats`; reasons counted zero times only with `all`.
pub fn show<W: Write>(p: &mut Printer<W>, s: &Stats, all: bool) -> io::Result<()> {
    p.open_object(None)?;
    p.open_array(Some("vni"))?;
    for (vni, c) in &s.vnis {
        p.open_object(None)?;
        p.uint("vni", "vni {}", (*vni).into())?;
        p.nl()?;
        counters(
            p,
            "RX: bytes packets   (decap, from the underlay)",
            &[
                ("rx_bytes", "{:<10}", c.rx_bytes),
                ("rx_packets", "{}", c.rx_packets),
            ],
        )?;
        counters(
            p,
            "TX: bytes packets   (encap, to the underlay)",
            &[
                ("tx_bytes", "{:<10}", c.tx_bytes),
                ("tx_packets", "{}", c.tx_packets),
            ],
        )?;
        counters(
            p,
            "local: bytes packets flooded",
            &[
                ("local_bytes", "{:<10}", c.local_bytes),
                ("local_packets", "{:<7}", c.local_packets),
                ("flood_packets", "{}", c.flood_packets),
            ],
        )?;
        p.close_object()?;
    }
    p.close_array()?;

    let reasons: Vec<_> = s.reasons.iter().filter(|(_, n)| all || *n != 0).collect();
    p.text("reasons:")?;
    p.nl()?;
    if reasons.is_empty() {
        p.indent()?;
        p.text("(none)")?;
        p.nl()?;
    }
    p.open_array(Some("reasons"))?;
    for (r, n) in reasons {
        p.open_object(None)?;
        p.indent()?;
        p.str("reason", "{:<22}", r.name())?;
        p.uint("count", "{:>12}", *n)?;
        p.str("outcome", "{}", r.outcome().name())?;
        p.nl()?;
        p.close_object()?;
    }
    p.close_array()?;
    if s.monitor_lost > 0 {
        p.uint(
            "monitor_lost",
            "vtep monitor: {} FDB events lost",
            s.monitor_lost,
        )?;
        p.nl()?;
    }
    p.close_object()
}

/// A heading line (text only) and a line of counters under it, as
/// `ip -s link` prints them: `(key, template, value)` each.
fn counters<W: Write>(
    p: &mut Printer<W>,
    heading: &str,
    fields: &[(&str, &str, u64)],
) -> io::Result<()> {
    p.indent()?;
    p.text(heading)?;
    p.nl()?;
    p.indent()?;
    for &(key, template, value) in fields {
        p.uint(key, template, value)?;
    }
    p.nl()
}

#[cfg(test)]
mod tests {
    use vtep_common::{Reason, VniCounters};

    use super::*;
    use crate::cli::output::printer::tests::printed;

    /// VNI 100 with traffic, VNI 200 without; two reasons counted, one not.
    fn stats() -> Stats {
        let mut s = Stats::default();
        s.vnis.insert(
            100,
            VniCounters {
                rx_packets: 100,
                rx_bytes: 9800,
                tx_packets: 101,
                tx_bytes: 9898,
                local_packets: 3,
                local_bytes: 294,
                flood_packets: 2,
                _reserved: 0,
            },
        );
        s.vnis.insert(200, VniCounters::default());
        s.reasons = vec![
            (Reason::NotVxlan, 12),
            (Reason::UnknownVni, 0),
            (Reason::LearningLimit, 1234567),
        ];
        s
    }

    const VNIS_TEXT: &str = "\
vni 100
    RX: bytes packets   (decap, from the underlay)
    9800       100
    TX: bytes packets   (encap, to the underlay)
    9898       101
    local: bytes packets flooded
    294        3       2
vni 200
    RX: bytes packets   (decap, from the underlay)
    0          0
    TX: bytes packets   (encap, to the underlay)
    0          0
    local: bytes packets flooded
    0          0       0
";

    #[test]
    fn text_lines() {
        assert_eq!(
            printed(false, |p| show(p, &stats(), false)),
            format!(
                "{VNIS_TEXT}reasons:
    not-vxlan                        12 pass
    learning-limit              1234567 not-learned
"
            )
        );
        assert_eq!(
            printed(false, |p| show(p, &stats(), true)),
            format!(
                "{VNIS_TEXT}reasons:
    not-vxlan                        12 pass
    unknown-vni                       0 drop
    learning-limit              1234567 not-learned
"
            )
        );
    }

    #[test]
    fn json() {
        let vni = concat!(
            r#"{"vni":[{"vni":100,"rx_bytes":9800,"rx_packets":100,"tx_bytes":9898,"tx_packets":101,"#,
            r#""local_bytes":294,"local_packets":3,"flood_packets":2},"#,
            r#"{"vni":200,"rx_bytes":0,"rx_packets":0,"tx_bytes":0,"tx_packets":0,"#,
            r#""local_bytes":0,"local_packets":0,"flood_packets":0}],"#,
        );
        assert_eq!(
            printed(true, |p| show(p, &stats(), false)),
            format!(
                "{vni}{}\n",
                concat!(
                    r#""reasons":[{"reason":"not-vxlan","count":12,"outcome":"pass"},"#,
                    r#"{"reason":"learning-limit","count":1234567,"outcome":"not-learned"}]}"#
                )
            )
        );
    }

    #[test]
    fn lost_monitor_events() {
        let s = Stats {
            reasons: vec![(Reason::NotVxlan, 0)],
            monitor_lost: 12,
            ..Stats::default()
        };
        assert_eq!(
            printed(false, |p| show(p, &s, false)),
            "reasons:\n    (none)\nvtep monitor: 12 FDB events lost\n"
        );
        assert_eq!(
            printed(true, |p| show(p, &s, false)),
            "{\"vni\":[],\"reasons\":[],\"monitor_lost\":12}\n"
        );
    }

    #[test]
    fn nothing_counted() {
        let s = Stats {
            reasons: vec![(Reason::NotVxlan, 0)],
            ..Stats::default()
        };
        assert_eq!(
            printed(false, |p| show(p, &s, false)),
            "reasons:\n    (none)\n"
        );
        assert_eq!(
            printed(true, |p| show(p, &s, false)),
            "{\"vni\":[],\"reasons\":[]}\n"
        );
    }
}
