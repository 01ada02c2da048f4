//! Builds the eBPF object (the `vtep-ebpf` binary, for the BPF target, with
//! the nightly toolchain) into OUT_DIR, where `include_bytes_aligned!` finds it.
fn main() -> anyhow::Result<()> {
    let package = aya_build::Package {
        name: "vtep-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../vtep-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
