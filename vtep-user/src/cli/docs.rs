//! `vtep completions SHELL` and `vtep man DIR`: shell completions and man
//! pages generated from the clap definitions, so that they always say what
//! this binary parses. `cargo xtask dist` runs them to build the Debian
//! package; an operator can regenerate what the package installed. They are
//! ordinary subcommands, listed by `--help` like the others: clap_complete
//! offers hidden subcommands all the same, so hiding them would only make
//! the completions offer words that `--help` does not explain.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, Subcommand};
use clap_complete::Shell;

use super::Cli;

/// The man section of vtep's pages: system administration tools and daemons.
const MAN_SECTION: &str = "8";

#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// Print vtep's completion script for SHELL
    /// (`vtep completions bash > /usr/share/bash-completion/completions/vtep`).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write vtep's man pages into DIR (vtep.8, and one per subcommand:
    /// vtep-fdb-add.8 and so on) and print their paths.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

pub fn run(command: DocsCommand) -> Result<()> {
    let mut out = io::stdout().lock();
    match command {
        DocsCommand::Completions { shell } => completions(shell, &mut out),
        DocsCommand::Man { dir } => {
            for path in write_man_pages(&dir)? {
                writeln!(out, "{}", path.display())?;
            }
        }
    }
    out.flush().context("printing to stdout")
}

/// Writes `shell`'s completion script for vtep to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "vtep", out);
}

/// Every man page: (file name, roff text), vtep.8 first, then one per
/// subcommand, as `git` has git-commit(1): the SUBCOMMANDS section of each
/// page names the pages below it (`vtep-fdb(8)`).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn add(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
        let man = clap_mangen::Man::new(cmd.clone()).section(MAN_SECTION);
        let mut roff = Vec::new();
        man.render(&mut roff)
            .expect("rendering into a Vec cannot fail");
        pages.push((man.get_filename(), roff));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            add(sub.clone(), pages);
        }
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Names the subcommands' pages `vtep-fdb-add` (their display names).
    cmd.build();
    let mut pages = Vec::new();
    add(cmd, &mut pages);
    pages
}

/// Writes [`man_pages`] into `dir` (made if missing); their paths.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    man_pages()
        .into_iter()
        .map(|(name, roff)| {
            let path = dir.join(name);
            std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The subcommands an operator looks for first.
    const SUBCOMMANDS: [&str; 4] = ["fdb", "vni", "port", "run"];

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        completions(shell, &mut out);
        String::from_utf8(out).expect("completion scripts are UTF-8")
    }

    #[test]
    fn completions_offer_the_subcommands_and_their_verbs() {
        let bash = script(Shell::Bash);
        for sub in SUBCOMMANDS {
            assert!(
                bash.contains(&format!("vtep__subcmd__{sub})")),
                "bash: no {sub}"
            );
        }
        assert!(
            bash.contains("vtep__subcmd__fdb__subcmd__append)"),
            "bash: no fdb append"
        );
        let zsh = script(Shell::Zsh);
        for sub in SUBCOMMANDS {
            assert!(zsh.contains(&format!("'{sub}:")), "zsh: no {sub}");
        }
        let fish = script(Shell::Fish);
        for sub in SUBCOMMANDS {
            assert!(fish.contains(&format!("-a \"{sub}\"")), "fish: no {sub}");
        }
        assert!(fish.contains("-l pin-path"), "fish: no --pin-path");
    }

    #[test]
    fn man_pages_cover_every_subcommand() {
        let pages = man_pages();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "vtep.8");
        for name in [
            "vtep-run.8",
            "vtep-fdb.8",
            "vtep-fdb-add.8",
            "vtep-vni-set.8",
            "vtep-port-add.8",
        ] {
            assert!(names.contains(&name), "no {name} in {names:?}");
        }
        let top = String::from_utf8_lossy(&pages[0].1);
        assert!(top.contains(".TH vtep 8 "), "vtep.8 is not in section 8");
        for sub in SUBCOMMANDS {
            assert!(
                top.contains(&format!("vtep\\-{sub}(8)")),
                "vtep.8: no {sub}"
            );
        }
        let run = &pages.iter().find(|(n, _)| n == "vtep-run.8").unwrap().1;
        assert!(String::from_utf8_lossy(run).contains("\\-\\-config"));
    }

    /// The example config the Debian package installs as /etc/vtep/vtep.toml
    /// (`cargo xtask dist`) is one that `vtep run` accepts.
    #[test]
    fn the_packaged_example_config_parses() {
        let text = include_str!("../../../packaging/vtep.toml");
        let config: crate::model::config::Config = text
            .parse()
            .unwrap_or_else(|e| panic!("packaging/vtep.toml: {e}"));
        assert_eq!(config.vnis.len(), 1);
    }
}
