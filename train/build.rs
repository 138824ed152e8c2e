//! Links libtorch so that the `train` binary runs straight after `cargo build`:
//! - an rpath to libtorch's folder (torch/lib of the project's .venv), so no LD_LIBRARY_PATH;
//! - `--no-as-needed -ltorch`, so libtorch.so (and through it libtorch_cuda.so) stays in the
//!   binary's NEEDED list even though Rust code calls no CUDA symbol; otherwise the linker drops
//!   it and `Device::cuda_if_available()` silently answers CPU on a GPU machine.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
