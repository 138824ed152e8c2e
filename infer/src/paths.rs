//! Where the project's Python virtual environment lives.
//!
//! `make` creates `.venv` at the project root with the pinned `onnxruntime` and `ale-py`
//! packages. Binaries find it from the working directory or from their own location
//! (`<root>/target/<profile>/play`), so they work from any folder after `make`.

use std::path::{Path, PathBuf};

/// Candidate `.venv` folders: `./.venv`, then `<root>/.venv` for a binary under
/// `<root>/target/<profile>/`. Only existing folders, without duplicates.
pub fn project_venvs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if p.is_dir() {
            let c = p.canonicalize().unwrap_or(p);
            if !out.contains(&c) {
                out.push(c);
            }
        }
    };
    push(PathBuf::from(".venv"));
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(4) {
            push(anc.join(".venv"));
        }
    }
    out
}

/// The `lib/python3.*/site-packages` folders of a virtual environment.
pub fn venv_site_packages(venv: &Path) -> impl Iterator<Item = PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found.into_iter()
}
