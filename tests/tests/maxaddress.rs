//! `maxaddress` is a bound, not a hint: a flood of random source MACs from
//! both sides at once (a workload behind an access port, and VXLAN from a
//! peer VTEP), sent on both CPUs, leaves exactly `maxaddress` learned
//! entries, round after round.

use std::time::{Duration, Instant};

use vtep_tests::lab::{Flood, Lab, UPLINK, VniConfig, wait_until};

const VNI: u32 = 100;
const MAXADDRESS: usize = 500;
/// Source MACs per sender; two senders a round, 20,000 MACs in all.
const PER_SENDER: usize = 10_000;
/// Learned entries age out between rounds.
const AGEING: u32 = 2;
/// Rounds of the flood, each from all-aged-out: each is a chance for two
/// CPUs to race for the last slot.
const ROUNDS: u64 = 5;

/// Sends `count` broadcast frames from random source MACs (locally
/// administered unicast, from `seed`) out of `dev` with an AF_PACKET
/// socket, starting at the UNIX time `start` (so that senders in other
/// processes start together). `plain DEV COUNT SEED START`: tenant frames;
/// `vxlan ... DST_MAC SRC_MAC SRC_IP DST_IP`: each in VXLAN (VNI 100, UDP
/// checksum 0) to a VTEP.
const SENDER: &str = r#"
import random, socket, struct, sys, time
mode, dev, count, seed, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rnd = random.Random(seed)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
def mac(m):
    return bytes(int(b, 16) for b in m.split(':'))
def csum(b):
    n = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while n >> 16:
        n = (n & 0xffff) + (n >> 16)
    return ~n & 0xffff
frames = []
for _ in range(count):
    src = bytes([(rnd.getrandbits(8) & 0xfc) | 0x02]) + rnd.getrandbits(40).to_bytes(5, 'big')
    inner = b'\xff' * 6 + src + b'\x88\xb5' + bytes(46)
    if mode == 'vxlan':
        dmac, smac, sip, dip = mac(sys.argv[6]), mac(sys.argv[7]), socket.inet_aton(sys.argv[8]), socket.inet_aton(sys.argv[9])
        vxlan = struct.pack('!II', 0x08000000, 100 << 8) + inner
        udp = struct.pack('!HHHH', 49152 + rnd.getrandbits(12), 4789, 8 + len(vxlan), 0) + vxlan
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, sip, dip)
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        frames.append(dmac + smac + b'\x08\x00' + ip + udp)
    else:
        frames.append(inner)
while time.time() < start:
    pass
for f in frames:
    s.send(f)
print('%.0f frames/s' % (count / (time.time() - start)))
"#;

#[test]
fn maxaddress_holds_under_a_flood_from_both_sides_on_both_cpus() {
    let lab = Lab::new("maxaddress");
    let ov = lab.overlay(
        2,
        &VniConfig::new(VNI)
            .maxaddress(MAXADDRESS as u32)
            .ageing(AGEING),
        Flood::FullMesh,
    );
    let (h1, h2, w1) = (&ov.hosts[0], &ov.hosts[1], &ov.workloads[0]);
    let sender = lab.dir().join("sender.py");
    std::fs::write(&sender, SENDER).expect("writing the sender");
    let h1_mac = h1.netns.ip_json(&format!("link show {UPLINK}"))[0]["address"]
        .as_str()
        .expect("uplink MAC")
        .to_owned();
    let h2_mac = h2.netns.ip_json(&format!("link show {UPLINK}"))[0]["address"]
        .as_str()
        .expect("uplink MAC")
        .to_owned();
    let learned = || {
        lab.fdb(h1, Some(VNI))
            .into_iter()
            .filter(|e| e.is_learned())
            .count()
    };
    // The datapath's count of learned MACs (`vni show`), which decides.
    let counted = || {
        let json = lab.vtep_ok(h1, "vni show -j");
        let vnis: serde_json::Value = serde_json::from_str(&json).expect("vni show -j");
        vnis.as_array()
            .into_iter()
            .flatten()
            .find(|v| v["vni"] == VNI)
            .and_then(|v| v["learned"].as_u64())
            .expect("the VNI's learned count")
    };
    let test_start = Instant::now();
    for round in 0..ROUNDS {
        let limited = lab.stats(h1).reason("learning-limit");
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
            + 1.0;
        let sender = sender.display();
        let (n, seed) = (PER_SENDER, 2 * round);
        // Pinned to CPU 0 and CPU 1: the receive side of a veth runs on
        // the sender's CPU, so the gateway learns on both at once.
        let mut procs = [
            w1.netns.spawn(&format!(
                "taskset -c 0 python3 {sender} plain eth0 {n} {seed} {start}"
            )),
            h2.netns.spawn(&format!(
                "taskset -c 1 python3 {sender} vxlan {UPLINK} {n} {} {start} {h1_mac} {h2_mac} {} {}",
                seed + 1,
                h2.underlay_ip,
                h1.underlay_ip
            )),
        ];
        for p in &mut procs {
            let done = wait_until(Duration::from_secs(10), || p.exited().is_some());
            assert!(
                done,
                "round {round}: a sender did not finish: {}",
                p.output()
            );
            assert_eq!(
                p.exited().and_then(|s| s.code()),
                Some(0),
                "round {round}: {}",
                p.output()
            );
        }
        for p in &procs {
            eprintln!("round {round}: sent {}", p.output().trim());
        }
        let n = learned();
        assert_eq!(
            n,
            MAXADDRESS,
            "round {round}: learned entries in VNI {VNI} with maxaddress {MAXADDRESS}\n{}",
            lab.diagnostics()
        );
        assert_eq!(
            counted(),
            MAXADDRESS as u64,
            "round {round}: the datapath's count"
        );
        assert!(
            lab.stats(h1).reason("learning-limit") > limited,
            "round {round}: no learning-limit counted\n{}",
            lab.diagnostics()
        );
        // Everything ages out before the next round.
        let aged = wait_until(Duration::from_secs(u64::from(AGEING) + 5), || {
            learned() == 0 && counted() == 0
        });
        assert!(
            aged,
            "round {round}: learned entries did not age out (or their count stayed)\n{}",
            lab.diagnostics()
        );
    }
    eprintln!("{ROUNDS} rounds in {:?}", test_start.elapsed());
}
