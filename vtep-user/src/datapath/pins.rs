//! Where a gateway lives in bpffs: the layout of its pin path.

use std::path::PathBuf;

/// Where vtep pins its maps, programs and links unless told otherwise.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/vtep";

/// The layout of a pin path.
#[derive(Clone, Debug)]
pub struct Pins {
    pub root: PathBuf,
}

impl Pins {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Pins { root: root.into() }
    }
    pub fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }
    pub fn progs(&self) -> PathBuf {
        self.root.join("progs")
    }
    pub fn prog(&self, name: &str) -> PathBuf {
        self.progs().join(name)
    }
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }
    /// The pinned link of `hook` (`xdp` or `tc`) on interface `ifindex`.
    pub fn link(&self, hook: &str, ifindex: u32) -> PathBuf {
        self.links().join(format!("{hook}-{ifindex}"))
    }
}
