//! ROM lookup and validation.
//!
//! `--rom breakout` (a game name) is searched in, in order: `$ALE_ROM_DIR`, `./roms`, the
//! ale-py package of the project's `.venv`, then the ale-py package of the `python3` on PATH.
//! `--rom path/to/file.bin` is used as given. Every file is validated before ALE sees it
//! (ALE 0.6 can abort the process on a bad file): it must exist, have a plausible size, and
//! its MD5 must be one of the ROMs ale-py 0.12.1 ships, unless unknown ROMs are allowed.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};

use crate::ale::AlePath;
use crate::{Error, Result};
use cartridge_contract::roms::{self, KNOWN_ROMS};

/// The install hint printed with every ROM error.
pub const INSTALL_HINT: &str =
    "install the ROMs with `pip install ale-py==0.12.1` (or run `make play`, \
     which puts it in .venv), or set ALE_ROM_DIR to a folder of <game>.bin files";

/// Largest Atari 2600 cartridge image we accept (bank-switched carts are at most 64 KiB; the
/// margin covers headers of other dump formats).
const MAX_ROM_BYTES: u64 = 512 * 1024;
const MIN_ROM_BYTES: u64 = 2048;

/// A ROM file that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rom {
    /// ALE game name, e.g. `breakout`.
    pub game: String,
    /// The validated file.
    pub path: PathBuf,
    /// MD5 of the file, 32 lowercase hex digits.
    pub md5: String,
    /// Whether the MD5 is in the table of known ROMs.
    pub known: bool,
}

/// Where and how to look for a ROM.
#[derive(Debug, Clone, Default)]
pub struct RomSearch {
    /// Accept a file whose MD5 is not in the known table (`--allow-unknown-rom`).
    pub allow_unknown: bool,
}

pub use cartridge_contract::roms::normalize_game;

/// The known ROM for a game name, as `(md5, size, supported by ALE 0.6)`.
pub fn known_rom(game: &str) -> Option<(&'static str, u64, bool)> {
    roms::known_rom(game).map(|r| (r.md5, r.size, r.ale06))
}

fn game_for_md5(md5: &str) -> Option<(&'static str, bool)> {
    roms::rom_for_md5(md5).map(|r| (r.game, r.ale06))
}

/// Whether the bundled ALE 0.6.0 has settings (rewards, lives, terminal) for this game name.
pub fn ale_supports(game: &str) -> bool {
    known_rom(game).is_some_and(|(_, _, sup)| sup)
}

impl RomSearch {
    /// Resolves `spec` (a game name or a path) to a validated ROM.
    ///
    /// Errors: [`Error::RomNotFound`] naming every folder searched and how to install ROMs;
    /// [`Error::InvalidRom`] for a file that is not a known Atari ROM.
    pub fn resolve(&self, spec: &str) -> Result<Rom> {
        let as_path = Path::new(spec);
        let looks_like_path = spec.contains('/')
            || spec.ends_with(".bin")
            || spec.ends_with(".a26")
            || (as_path.is_file() && !spec.is_empty());
        if looks_like_path {
            if !as_path.exists() {
                return Err(Error::RomNotFound {
                    what: format!("ROM file {spec}"),
                    searched: vec![as_path.to_path_buf()],
                    hint: INSTALL_HINT.into(),
                });
            }
            return self.validate(as_path);
        }
        let game = normalize_game(spec);
        let mut searched = Vec::new();
        for dir in search_dirs() {
            let candidate = dir.join(format!("{game}.bin"));
            if candidate.is_file() {
                return self.validate(&candidate);
            }
            searched.push(dir);
        }
        let what = if known_rom(&game).is_some() {
            format!("ROM for game '{game}'")
        } else {
            format!("ROM for '{spec}' (not a game name Cartridge knows; e.g. breakout, pong, space_invaders)")
        };
        Err(Error::RomNotFound {
            what,
            searched,
            hint: INSTALL_HINT.into(),
        })
    }

    /// Validates one file: exists, plausible size, MD5 in the known table (or allowed).
    pub fn validate(&self, path: &Path) -> Result<Rom> {
        let invalid = |reason: String| Error::InvalidRom {
            path: path.to_path_buf(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(invalid("it is not a regular file".into()));
        }
        let size = meta.len();
        if !(MIN_ROM_BYTES..=MAX_ROM_BYTES).contains(&size) {
            return Err(invalid(format!(
                "{size} bytes is not the size of an Atari 2600 ROM ({MIN_ROM_BYTES}..={MAX_ROM_BYTES} bytes); {INSTALL_HINT}"
            )));
        }
        let md5 = file_md5(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
        let stem = file_game_name(path);
        match game_for_md5(&md5) {
            Some((game, true)) => Ok(Rom {
                game: game.to_string(),
                path: path.to_path_buf(),
                md5,
                known: true,
            }),
            Some((game, false)) => Err(invalid(format!(
                "it is ale-py's ROM of '{game}', a game the bundled ALE 0.6.0 has no settings for \
                 (rewards, lives, game over); pick one of the 76 games of ALE 0.6, e.g. breakout or pong"
            ))),
            None if self.allow_unknown => {
                if !ale_supports(&stem) {
                    return Err(invalid(format!(
                        "MD5 {md5} is unknown and the file name '{stem}' is not a game the bundled ALE 0.6.0 \
                         supports; ALE picks the game's settings from the file name, so name the file \
                         <game>.bin (e.g. breakout.bin)"
                    )));
                }
                Ok(Rom {
                    game: stem,
                    path: path.to_path_buf(),
                    md5,
                    known: false,
                })
            }
            None => Err(invalid(format!(
                "MD5 {md5} is not one of the {} ROMs of ale-py 0.12.1, so it may not be an Atari ROM \
                 (or is another dump); use ale-py's ROMs ({INSTALL_HINT}), or pass --allow-unknown-rom \
                 to try it anyway",
                KNOWN_ROMS.len()
            ))),
        }
    }
}

impl Rom {
    /// The path to hand ALE: ALE 0.6 picks the game from the file name, so a known ROM stored
    /// under another name is linked as `<game>.bin` in a temporary folder.
    pub(crate) fn path_for_ale(&self) -> Result<AlePath> {
        if file_game_name(&self.path) == self.game {
            return Ok((self.path.clone(), None));
        }
        let dir = tempfile::tempdir()?;
        let link = dir.path().join(format!("{}.bin", self.game));
        let target = fs::canonicalize(&self.path)?;
        std::os::unix::fs::symlink(target, &link)?;
        Ok((link, Some(dir)))
    }
}

/// ALE's game name for a file: the lowercase file name up to its first dot.
fn file_game_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.split('.').next().unwrap_or("").to_ascii_lowercase()
}

/// MD5 of a file as 32 lowercase hex digits.
pub fn file_md5(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let digest = Md5::digest(&buf);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The folders searched for `<game>.bin`, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("ALE_ROM_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("roms"));
    for venv in crate::paths::project_venvs() {
        dirs.extend(crate::paths::venv_site_packages(&venv).map(|sp| sp.join("ale_py/roms")));
    }
    if let Some(pkg) = python_package_dir("ale_py") {
        dirs.push(pkg.join("roms"));
    } else {
        dirs.push(PathBuf::from("<python3 on PATH: no ale_py package>"));
    }
    dirs
}

/// The directory of a Python package as imported by the `python3` on PATH, if any.
pub(crate) fn python_package_dir(package: &str) -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import importlib.util as u,os;s=u.find_spec('{package}');print(os.path.dirname(s.origin) if s and s.origin else '')"),
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_game_names() {
        assert_eq!(normalize_game("breakout"), "breakout");
        assert_eq!(normalize_game("Breakout"), "breakout");
        assert_eq!(normalize_game("BreakoutNoFrameskip-v4"), "breakout");
        assert_eq!(normalize_game("SpaceInvaders"), "space_invaders");
        assert_eq!(normalize_game("space-invaders"), "space_invaders");
        assert_eq!(normalize_game("ALE/Pong-v5"), "pong");
    }

    #[test]
    fn table_has_ale_py_md5s() {
        // The MD5s of the ROM files ale-py 0.12.1 ships in its `roms/` folder.
        assert_eq!(
            known_rom("breakout"),
            Some(("f34f08e5eb96e500e851a80be3277a56", 2048, true))
        );
        assert_eq!(
            known_rom("pong").map(|r| r.0),
            Some("60e0ea3cbe0913d39803477945e9e5ec")
        );
        assert!(ale_supports("space_invaders"));
        assert!(!ale_supports("tetris_3000"));
    }

    #[test]
    fn random_bytes_are_refused_without_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("breakout.bin");
        let bytes: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(&p, bytes).expect("write");
        let err = RomSearch::default().validate(&p).expect_err("must refuse");
        assert!(err.to_string().contains("is not one of the"), "{err}");
        // With --allow-unknown-rom the name decides: breakout.bin is accepted as breakout.
        let rom = RomSearch {
            allow_unknown: true,
        }
        .validate(&p)
        .expect("allowed");
        assert_eq!(rom.game, "breakout");
        assert!(!rom.known);
    }

    #[test]
    fn tiny_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pong.bin");
        fs::write(&p, b"not a rom").expect("write");
        let err = RomSearch::default().validate(&p).expect_err("must refuse");
        assert!(
            err.to_string()
                .contains("not the size of an Atari 2600 ROM"),
            "{err}"
        );
    }
}
