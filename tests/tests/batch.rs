//! `vtep -batch FILE`: many changes in one run, checked before any is applied.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use vtep_tests::lab::{Flood, Host, Lab, Run, VniConfig, mac, tenant_net, vtep_bin};

const VNI: u32 = 100;

/// Writes `text` to a file of the lab's; its path.
fn batch_file(lab: &Lab, name: &str, text: &str) -> String {
    let path = lab.dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `vtep -batch - [-force]` in `host`, the batch on standard input.
fn batch_stdin(host: &Host, text: &str, force: bool) -> (bool, String) {
    let mut args = vec!["netns".into(), "exec".into(), host.name.clone()];
    args.push(vtep_bin().display().to_string());
    args.extend(["-batch".into(), "-".into()]);
    if force {
        args.push("-force".into());
    }
    args.extend(["--pin-path".into(), host.pin_path.display().to_string()]);
    let mut child = Command::new("ip")
        .args(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn vni_exists(lab: &Lab, host: &Host, vni: u32) -> bool {
    lab.vtep(host, &format!("fdb show vni {vni}")).success()
}

fn failed(run: &Run) -> &str {
    assert!(!run.success(), "expected a failure: {run}");
    &run.stderr
}

#[test]
fn a_batch_loads_vnis_ports_and_entries_that_forward() {
    let lab = Lab::new("batch load");
    // No learning and no flood list: only what the batch loads forwards.
    let ov = lab.overlay(2, &VniConfig::new(VNI).learning(false), Flood::Empty);
    let (h1, h2, w1) = (&ov.hosts[0], &ov.hosts[1], &ov.workloads[0]);
    let cidr = format!("{}.10/24", tenant_net(1));
    let newcomer = lab.workload(h2, 1, 2, &mac(2, 1, 2), &cidr);
    w1.add_neighbour(&newcomer);
    newcomer.add_neighbour(w1);
    lab.vtep_ok(
        h1,
        &format!("fdb add {} vni {VNI} dst {}", newcomer.mac, h2.underlay_ip),
    );
    lab.vtep_ok(h1, &format!("fdb add {} vni {VNI} dev {}", w1.mac, w1.port));

    let mut text = format!(
        "# the newcomer's port and entries\n\
         port add {port} vni {VNI}\n\
         fdb add {nmac} vni {VNI} dev {port}\n\
         \n\
         fdb add {wmac} vni {VNI} dst {h1ip}   # w1, behind h1\n\
         vni add 200 learning off ageing 60\n\
         fdb append 00:00:00:00:00:00 vni 200 dst {h1ip}\n",
        port = newcomer.port,
        nmac = newcomer.mac,
        wmac = w1.mac,
        h1ip = h1.underlay_ip,
    );
    for i in 0..1000u32 {
        text += &format!(
            "fdb add 02:00:01:00:{:02x}:{:02x} vni 200 dst 198.18.0.{}\n",
            i / 256,
            i % 256,
            10 + i % 50
        );
    }
    let file = batch_file(&lab, "load.batch", &text);
    lab.vtep_ok(h2, &format!("-batch {file}"));

    lab.assert_ping(&newcomer, &w1.ip);
    lab.assert_ping(w1, &newcomer.ip);
    let vni200 = lab.fdb(h2, Some(200));
    assert_eq!(vni200.iter().filter(|e| e.is_static()).count(), 1000);
    assert_eq!(vni200.iter().filter(|e| e.is_flood()).count(), 1);
    let ports = lab.vtep_ok(h2, "port show");
    assert!(ports.contains(&newcomer.port), "{ports}");

    // A port deleted takes its entries with it: a later line may add its MAC anew.
    let text = format!(
        "port del {port}\nfdb add {nmac} vni {VNI} dst {h1ip}\n",
        port = newcomer.port,
        nmac = newcomer.mac,
        h1ip = h1.underlay_ip,
    );
    let file = batch_file(&lab, "move.batch", &text);
    lab.vtep_ok(h2, &format!("-batch {file}"));
    let moved = lab.fdb_entry(h2, VNI, &newcomer.mac).unwrap();
    assert_eq!(moved.dst.as_deref(), Some(h1.underlay_ip.as_str()));
    lab.assert_no_ping(&newcomer, &w1.ip);
}

#[test]
fn a_batch_with_errors_applies_nothing_and_names_each_line() {
    let lab = Lab::new("batch errors");
    let ov = lab.overlay(1, &VniConfig::new(VNI), Flood::Empty);
    let h1 = &ov.hosts[0];
    let text = "vni add 300\n\
                fdb add 02:00:00:00:30:01 vni 300 dst 198.18.0.9\n\
                \n\
                fdb add 02:00:00:00:30:01 vni 300 dst 198.18.0.9\n\
                port add nosuchif0 vni 300\n\
                fdb add 02:00:00:00:30:02 vni 301 dst 198.18.0.9\n\
                fdb add 02:00:00:00:30:03 vni 300 dst 198.18.0.9 # fine\n";
    let file = batch_file(&lab, "bad.batch", text);

    let run = lab.vtep(h1, &format!("-batch {file}"));
    let err = failed(&run);
    for line in [
        format!("vtep: batch {file} line 4: fdb add: 02:00:00:00:30:01 in VNI 300: entry exists"),
        format!("vtep: batch {file} line 5: port add: no interface named \"nosuchif0\""),
        format!("vtep: batch {file} line 6: fdb add: VNI 301 is not configured"),
    ] {
        assert!(err.contains(&line), "no {line:?} in:\n{err}");
    }
    assert!(err.contains("3 lines wrong; nothing applied"), "{err}");
    assert!(
        !err.contains("line 1:") && !err.contains("line 7:"),
        "{err}"
    );
    assert!(!vni_exists(&lab, h1, 300), "a failed batch added VNI 300");

    // -force applies the good lines and still fails.
    let run = lab.vtep(h1, &format!("-batch {file} -force"));
    let err = failed(&run);
    assert!(err.contains(&format!("batch {file} line 4: ")), "{err}");
    assert!(err.contains(&format!("batch {file} line 6: ")), "{err}");
    assert!(err.contains("3 lines failed"), "{err}");
    assert!(vni_exists(&lab, h1, 300));
    for m in ["02:00:00:00:30:01", "02:00:00:00:30:03"] {
        assert!(lab.fdb_entry(h1, 300, m).is_some(), "{m} not loaded");
    }
    assert!(!vni_exists(&lab, h1, 301));

    // What the gateway holds counts too: the entry exists now.
    let again = batch_file(&lab, "again.batch", text.lines().nth(1).unwrap());
    let run = lab.vtep(h1, &format!("-b {again}"));
    let err = failed(&run);
    assert!(
        err.contains(&format!(
            "batch {again} line 1: fdb add: 02:00:00:00:30:01 in VNI 300: entry exists"
        )),
        "{err}"
    );
    // A command that changes nothing is no batch command.
    let show = batch_file(&lab, "show.batch", "fdb show\n");
    let err = failed(&lab.vtep(h1, &format!("-batch {show}"))).to_owned();
    assert!(err.contains("line 1: fdb show: a batch takes"), "{err}");
}

#[test]
fn a_batch_reads_standard_input() {
    let lab = Lab::new("batch stdin");
    let ov = lab.overlay(1, &VniConfig::new(VNI), Flood::Empty);
    let h1 = &ov.hosts[0];
    let (ok, err) = batch_stdin(
        h1,
        "vni add 400\nfdb add 02:00:00:00:40:01 vni 400 dst 198.18.0.9\n",
        false,
    );
    assert!(ok, "{err}");
    assert!(lab.fdb_entry(h1, 400, "02:00:00:00:40:01").is_some());

    let (ok, err) = batch_stdin(
        h1,
        "vni del 400\nfdb del 02:00:00:00:40:01 vni 400\nvni add 401\n",
        true,
    );
    assert!(!ok);
    assert!(
        err.contains("vtep: batch - line 2: fdb del: VNI 400 is not configured"),
        "{err}"
    );
    assert!(!vni_exists(&lab, h1, 400));
    assert!(vni_exists(&lab, h1, 401));
}
