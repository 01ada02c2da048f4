use which::which;

/// Building the eBPF binary needs `bpf-linker` (installed by `cargo xtask
/// setup`); rebuild when it changes.
fn main() {
    let bpf_linker = which("bpf-linker").expect("bpf-linker not found: run `cargo xtask setup`");
    println!("cargo:rerun-if-changed={}", bpf_linker.to_str().unwrap());
}
