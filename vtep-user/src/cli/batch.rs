//! `vtep -batch FILE`: many table changes in one run, as `bridge -batch`.
//!
//! One command a line (`fdb add|append|replace|del`, `vni add|set|del`,
//! `port add|del`, the words of the single commands; blank lines and `#`
//! comments are skipped). Every line is checked first — its arguments, and
//! against the gateway's tables as the lines before it leave them — and
//! only a batch without errors is applied (with `-force` the good lines are
//! applied and each bad one reported). The whole batch uses one open
//! gateway and one generation bump, so a large FDB reaches the datapath at
//! map-update speed.

use std::{
    collections::{HashMap, HashSet},
    io::Read as _,
    net::IpAddr,
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use vtep_common::{FDB_F_FOLLOWED, FDB_KIND_LOCAL};

use super::{Change, Command, FdbCommand, Place, published};
use crate::{
    datapath::gateway::{
        Gateway, GatewayError,
        check::{self, TableView},
    },
    model::{addr::Mac, config::Locals},
    system::iface,
};

/// Runs the batch in `file` (`-`: standard input) against the gateway
/// pinned at `pin`. `force`: apply the lines that are right even when
/// others are not.
pub fn run(pin: &Path, file: &Path, force: bool) -> Result<()> {
    let name = file.display().to_string();
    let text = read(file).with_context(|| format!("batch {name}"))?;
    let mut gw = Gateway::open(pin)?;

    let mut failed = 0;
    let mut changes = Vec::new();
    let mut tables = Tables::new(&gw)?;
    for (n, words, change) in parse(&text) {
        match change.and_then(|c| tables.check(&c).map(|()| c)) {
            Ok(c) => changes.push((n, c)),
            Err(e) => {
                failed += 1;
                report(&name, n, &words, &e);
            }
        }
    }
    if failed > 0 && !force {
        bail!(
            "batch {name}: {failed} {} wrong; nothing applied",
            lines(failed)
        );
    }

    let mut applied = 0;
    for (n, c) in &changes {
        match c.apply(&mut gw) {
            Ok(()) => applied += 1,
            Err(e) => {
                failed += 1;
                report(&name, *n, &[c.what()], &e);
                if !force {
                    eprintln!(
                        "vtep: batch {name}: stopped at line {n}; the {applied} commands before it are applied"
                    );
                    break;
                }
            }
        }
    }
    if applied > 0 {
        published(&mut gw)?;
    }
    if failed > 0 {
        bail!("batch {name}: {failed} {} failed", lines(failed));
    }
    Ok(())
}

/// The lines of a batch that have words, each with its number (from 1),
/// its words and the change it asks for, its arguments checked (not yet
/// against the tables): what `vtep -batch` reads before it opens the
/// gateway's tables.
pub fn parse(text: &str) -> impl Iterator<Item = (usize, Vec<&str>, Result<Change>)> {
    let mut parser = Line::command();
    text.lines().enumerate().filter_map(move |(i, line)| {
        let words = words(line);
        if words.is_empty() {
            return None;
        }
        let change = parse_line(&mut parser, &words);
        Some((i + 1, words, change))
    })
}

fn read(file: &Path) -> Result<String> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        text = std::fs::read_to_string(file)?;
    }
    Ok(text)
}

fn lines(n: usize) -> &'static str {
    if n == 1 { "line" } else { "lines" }
}

/// `vtep: batch FILE line N: fdb add: ...`, the command's words said once.
fn report(name: &str, n: usize, words: &[&str], e: &anyhow::Error) {
    let what = words.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let msg = format!("{e:#}");
    if msg.starts_with(&what) {
        eprintln!("vtep: batch {name} line {n}: {msg}");
    } else {
        eprintln!("vtep: batch {name} line {n}: {what}: {msg}");
    }
}

/// The words of a line: split at white space, up to a word that starts
/// with `#` (a comment). No quoting: no argument has spaces.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect()
}

/// A batch line: one of `vtep`'s commands, without the global options.
#[derive(Debug, Parser)]
#[command(name = "vtep", no_binary_name = true, disable_help_flag = true)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

/// The change a line asks for, its arguments checked. `parser` is
/// [`Line`]'s, made once for the whole batch (making it costs more than
/// parsing a line).
fn parse_line(parser: &mut clap::Command, words: &[&str]) -> Result<Change> {
    let line = parser
        .try_get_matches_from_mut(words)
        .and_then(|m| Line::from_arg_matches(&m))
        .map_err(|e| {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            anyhow::anyhow!("{}", first.trim_start_matches("error: "))
        })?;
    match line.command {
        Command::Fdb {
            command: FdbCommand::Show { .. },
        } => {}
        Command::Fdb { command } => {
            let (verb, a) = match &command {
                FdbCommand::Add(a) => ("add", a),
                FdbCommand::Append(a) => ("append", a),
                FdbCommand::Replace(a) => ("replace", a),
                FdbCommand::Del(a) => ("del", a),
                FdbCommand::Show { .. } => unreachable!("matched above"),
            };
            return Change::fdb(verb, a);
        }
        Command::Vni { command } if !matches!(command, super::VniCommand::Show) => {
            return Change::vni(&command);
        }
        Command::Port { command } if !matches!(command, super::PortCommand::Show) => {
            return Change::port(&command);
        }
        _ => {}
    }
    bail!(
        "a batch takes the commands that change the tables: fdb add|append|replace|del, \
         vni add|set|del, port add|del"
    )
}

/// The gateway's tables as the lines checked so far leave them: the
/// gateway's maps, read as needed, under what earlier lines change.
struct Tables<'g> {
    gw: &'g Gateway,
    locals: Locals,
    uplink: u32,
    vnis: HashMap<u32, VniState>,
    /// Entries an earlier line adds or removes (`None`).
    fdb: HashMap<(u32, Mac), Option<Entry>>,
    /// Access ports an earlier line deletes: the maps' entries that point
    /// to them are flushed with them.
    flushed: HashSet<u32>,
    flood: HashMap<u32, Vec<IpAddr>>,
    /// Access ports an earlier line adds (`Some(vni)`) or removes.
    ports: HashMap<u32, Option<u32>>,
    /// How many access ports each VNI has.
    port_counts: HashMap<u32, usize>,
}

/// What the check needs of an FDB entry.
#[derive(Clone, Copy)]
struct Entry {
    followed: bool,
    /// The access port it points to, if any.
    port: Option<u32>,
}

#[derive(Clone, Copy)]
struct VniState {
    exists: bool,
    followed: bool,
    /// An earlier line deleted it: what the maps hold for it is gone.
    cleared: bool,
}

impl<'g> Tables<'g> {
    fn new(gw: &'g Gateway) -> Result<Self> {
        let underlay = gw.underlay()?;
        Ok(Tables {
            gw,
            locals: Locals::of(&underlay),
            uplink: underlay.uplink_ifindex,
            vnis: HashMap::new(),
            fdb: HashMap::new(),
            flushed: HashSet::new(),
            flood: HashMap::new(),
            ports: HashMap::new(),
            port_counts: HashMap::new(),
        })
    }

    /// `vni` as the lines so far leave it, read from the maps once.
    fn vni_mut(&mut self, vni: u32) -> &mut VniState {
        let gw = self.gw;
        self.vnis.entry(vni).or_insert_with(|| {
            let v = TableView::vni(gw, vni);
            VniState {
                exists: v.is_some(),
                followed: v.is_some_and(|v| v.followed),
                cleared: false,
            }
        })
    }

    fn cleared(&self, vni: u32) -> bool {
        self.vnis.get(&vni).is_some_and(|v| v.cleared)
    }

    /// The entry of `mac` in `vni`, if it has one.
    fn entry(&self, vni: u32, mac: Mac) -> Option<Entry> {
        match self.fdb.get(&(vni, mac)) {
            Some(e) => *e,
            None if self.cleared(vni) => None,
            None => self.gw.fdb_get(vni, mac).and_then(|e| {
                let port = (e.kind == FDB_KIND_LOCAL).then_some(e.ifindex);
                if port.is_some_and(|p| self.flushed.contains(&p)) {
                    return None;
                }
                Some(Entry {
                    followed: e.flags & FDB_F_FOLLOWED != 0,
                    port,
                })
            }),
        }
    }

    fn flood_list(&mut self, vni: u32) -> &mut Vec<IpAddr> {
        let from_maps = if self.cleared(vni) {
            Vec::new()
        } else {
            self.gw.flood_list(vni)
        };
        self.flood.entry(vni).or_insert(from_maps)
    }

    fn port_count_mut(&mut self, vni: u32) -> &mut usize {
        let from_maps = if self.cleared(vni) {
            0
        } else {
            self.gw.port_count(vni)
        };
        self.port_counts.entry(vni).or_insert(from_maps)
    }

    /// Refuses `c` as applying it would (the gateway's own checks, on the
    /// tables as the lines before it leave them), and otherwise takes it
    /// into the tables.
    fn check(&mut self, c: &Change) -> Result<()> {
        c.check_dst(&*self)?;
        match c {
            Change::FdbSet {
                vni,
                mac,
                place,
                mode,
            } => {
                self.vni_mut(*vni);
                let port = match place {
                    Place::Port { ifindex, .. } => Some(*ifindex),
                    Place::Remote(_) => None,
                };
                check::fdb_set(&*self, *vni, *mac, port, false, *mode)?;
                self.fdb.insert(
                    (*vni, *mac),
                    Some(Entry {
                        followed: false,
                        port,
                    }),
                );
            }
            Change::FdbDel { vni, mac } => {
                self.vni_mut(*vni);
                check::fdb_del(&*self, *vni, *mac)?;
                self.fdb.insert((*vni, *mac), None);
            }
            Change::FloodAdd { vni, dst } => {
                self.vni_mut(*vni);
                self.flood_list(*vni);
                check::flood_add(&*self, *vni, *dst)?;
                self.flood_list(*vni).push(*dst);
            }
            Change::FloodDel { vni, dst } => {
                self.vni_mut(*vni);
                self.flood_list(*vni);
                check::flood_del(&*self, *vni, *dst)?;
                let list = self.flood_list(*vni);
                match dst {
                    None => list.clear(),
                    Some(d) => list.retain(|m| m != d),
                }
            }
            Change::VniAdd(v) => {
                self.vni_mut(v.id);
                check::vni_set(&*self, v.id, false)?;
                check::vni_group(&*self, v.group)?;
                self.vni_mut(v.id).exists = true;
            }
            Change::VniSet { vni, args } => {
                self.vni_mut(*vni);
                check::owned(&*self, *vni)?;
                let settings = super::VniSettings::parse("vni set", args)?;
                check::vni_group(&*self, settings.group.flatten())?;
            }
            Change::VniDel(vni) => {
                self.vni_mut(*vni);
                check::owned(&*self, *vni)?;
                *self.vni_mut(*vni) = VniState {
                    exists: false,
                    followed: false,
                    cleared: true,
                };
                self.fdb.retain(|(v, _), _| v != vni);
                self.flood.remove(vni);
                self.port_counts.remove(vni);
                for p in self.ports.values_mut() {
                    if *p == Some(*vni) {
                        *p = None;
                    }
                }
            }
            Change::PortAdd { ifname, vni } => {
                self.vni_mut(*vni);
                self.port_count_mut(*vni);
                let ifindex = check::port_add(&*self, ifname, iface::ifindex(ifname), *vni)?;
                if TableView::port_vni(&*self, ifindex).is_none() {
                    *self.port_count_mut(*vni) += 1;
                }
                self.ports.insert(ifindex, Some(*vni));
            }
            Change::PortDel { ifname } => {
                let (ifindex, vni) = check::port_del(&*self, ifname, iface::ifindex(ifname))?;
                *self.port_count_mut(vni) -= 1;
                self.ports.insert(ifindex, None);
                self.flushed.insert(ifindex);
                for e in self.fdb.values_mut() {
                    if e.is_some_and(|e| e.port == Some(ifindex)) {
                        *e = None;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The tables as the lines checked so far leave them, for the gateway's
/// checks.
impl TableView for Tables<'_> {
    fn vni(&self, vni: u32) -> Option<check::VniState> {
        let v = match self.vnis.get(&vni) {
            Some(v) => *v,
            None => {
                return TableView::vni(self.gw, vni);
            }
        };
        v.exists.then_some(check::VniState {
            followed: v.followed,
        })
    }

    fn entry_followed(&self, vni: u32, mac: Mac) -> Option<bool> {
        self.entry(vni, mac).map(|e| e.followed)
    }

    fn flood_contains(&self, vni: u32, dst: IpAddr) -> bool {
        match self.flood.get(&vni) {
            Some(list) => list.contains(&dst),
            None => !self.cleared(vni) && self.gw.flood_contains(vni, dst),
        }
    }

    fn flood_len(&self, vni: u32) -> usize {
        match self.flood.get(&vni) {
            Some(list) => list.len(),
            None if self.cleared(vni) => 0,
            None => self.gw.flood_len(vni),
        }
    }

    fn port_vni(&self, ifindex: u32) -> Option<u32> {
        match self.ports.get(&ifindex) {
            Some(p) => *p,
            None => self.gw.port_vni(ifindex).filter(|v| !self.cleared(*v)),
        }
    }

    fn port_count(&self, vni: u32) -> usize {
        match self.port_counts.get(&vni) {
            Some(n) => *n,
            None if self.cleared(vni) => 0,
            None => self.gw.port_count(vni),
        }
    }

    fn uplink(&self) -> Result<u32, GatewayError> {
        Ok(self.uplink)
    }

    fn locals(&self) -> Result<Locals, GatewayError> {
        Ok(self.locals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::gateway::SetMode;

    #[test]
    fn comments_and_blank_lines_have_no_words() {
        assert!(words("").is_empty());
        assert!(words("   \t ").is_empty());
        assert!(words("# a comment").is_empty());
        assert!(words("   #indented").is_empty());
        assert_eq!(
            words("  vni add 100\tlearning off  # the tenant"),
            ["vni", "add", "100", "learning", "off"]
        );
        // A # inside a word is part of it.
        assert_eq!(
            words("port add a#b vni 1"),
            ["port", "add", "a#b", "vni", "1"]
        );
    }

    #[test]
    fn lines_parse_to_changes() {
        let c = parse_line(
            &mut Line::command(),
            &words("fdb add 02:00:00:00:01:02 vni 100 dst 198.18.0.2"),
        )
        .unwrap();
        assert_eq!(
            c,
            Change::FdbSet {
                vni: 100,
                mac: "02:00:00:00:01:02".parse().unwrap(),
                place: Place::Remote("198.18.0.2".parse().unwrap()),
                mode: SetMode::Add,
            }
        );
        let c = parse_line(
            &mut Line::command(),
            &words("fdb append 00:00:00:00:00:00 vni 7 dst 198.18.0.3"),
        )
        .unwrap();
        assert_eq!(
            c,
            Change::FloodAdd {
                vni: 7,
                dst: "198.18.0.3".parse().unwrap()
            }
        );
        let Change::VniAdd(v) =
            parse_line(&mut Line::command(), &words("vni add 100 learning off")).unwrap()
        else {
            panic!("not a vni add");
        };
        assert!(!v.learning);
        assert_eq!(v.id, 100);
        assert_eq!(
            parse_line(&mut Line::command(), &words("port del t1w1")).unwrap(),
            Change::PortDel {
                ifname: "t1w1".into()
            }
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let err = |l: &str| {
            parse_line(&mut Line::command(), &words(l))
                .unwrap_err()
                .to_string()
        };
        let e = err("fdb add 02:00:00:00:01:02 vni 100 dst 198.18.0.2 dst 198.18.0.3");
        assert!(e.starts_with("fdb add: dst given twice"), "{e}");
        let e = err("fdb add 02:00:00:00:01:02");
        assert!(e.contains("missing `vni VNI`"), "{e}");
        let e = err("vni add ten");
        assert!(e.starts_with("vni add: VNI \"ten\""), "{e}");
        let e = err("fdb show");
        assert!(e.contains("commands that change the tables"), "{e}");
        let e = err("stats");
        assert!(e.contains("commands that change the tables"), "{e}");
        let e = err("fbd add");
        assert!(e.contains("unrecognized subcommand 'fbd'"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
