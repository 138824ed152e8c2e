//! Finding and loading the ONNX Runtime library (`ort`'s `load-dynamic`: nothing is linked at
//! build time), once per process, and its environment, which every session shares.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::{Error, Result};

/// The loaded ONNX Runtime library and its environment, or why it could not be loaded.
static ORT_ENV: OnceLock<std::result::Result<(PathBuf, Environment), String>> = OnceLock::new();

/// Finds and loads the ONNX Runtime library once per process. Search order:
/// `$ORT_DYLIB_PATH`, the onnxruntime package of the project's `.venv`, that of the `python3`
/// on PATH, then system library folders. Errors name every place searched.
pub fn init_runtime() -> Result<PathBuf> {
    runtime().map(|(p, _)| p.clone())
}

/// The process's ONNX Runtime environment ([`init_runtime`] first), for sessions on models
/// outside [`crate::policy::OnnxPolicy`]'s contract (tests run recurrent models through it).
///
/// Errors: [`Error::RuntimeNotFound`].
pub fn environment() -> Result<&'static Environment> {
    runtime().map(|(_, env)| env)
}

fn runtime() -> Result<&'static (PathBuf, Environment)> {
    ORT_ENV
        .get_or_init(|| {
            let (found, searched) = find_runtime_library()?;
            let Some(path) = found else {
                return Err(format!(
                    "no ONNX Runtime library (libonnxruntime.so) found; searched:\n  {}\n\
                     install it with `pip install onnxruntime==1.31.1` (or run `make play`, which puts \
                     it in .venv), or set ORT_DYLIB_PATH to the library file",
                    searched.join("\n  ")
                ));
            };
            let env = ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
                .with_name("cartridge")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))?;
            Ok((path, env))
        })
        .as_ref()
        .map_err(|e| Error::RuntimeNotFound(e.clone()))
}

/// The library to load and the places searched before it. An explicit `$ORT_DYLIB_PATH` is
/// used or refused (never silently replaced by another library).
fn find_runtime_library() -> std::result::Result<(Option<PathBuf>, Vec<String>), String> {
    let mut searched = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok((Some(p), searched));
        }
        return Err(format!(
            "ORT_DYLIB_PATH is set to {}, which is not a file; point it at an ONNX Runtime \
             library (libonnxruntime.so, >= 1.17), or unset it to search .venv, python3's \
             onnxruntime package and the system library folders",
            p.display()
        ));
    }
    searched.push("$ORT_DYLIB_PATH (unset)".into());
    let mut dirs: Vec<PathBuf> = Vec::new();
    for venv in crate::paths::project_venvs() {
        dirs.extend(crate::paths::venv_site_packages(&venv).map(|sp| sp.join("onnxruntime/capi")));
    }
    if dirs.is_empty() {
        searched.push("./.venv and <project>/.venv (no venv)".into());
    }
    match crate::rom::python_package_dir("onnxruntime") {
        Some(pkg) => dirs.push(pkg.join("capi")),
        None => searched.push("python3 on PATH (no onnxruntime package)".into()),
    }
    for d in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ] {
        dirs.push(PathBuf::from(d));
    }
    for dir in dirs {
        if let Some(lib) = library_in(&dir) {
            return Ok((Some(lib), searched));
        }
        searched.push(dir.display().to_string());
    }
    Ok((None, searched))
}

/// `libonnxruntime.so` or the highest-versioned `libonnxruntime.so.X.Y.Z` in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so."))
        })
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}
