#![no_std]
// This file exists so that vtep-user can name this crate as a build
// dependency (aya-build builds the `vtep-ebpf` binary for the BPF target).
