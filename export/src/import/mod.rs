//! Foreign models to Cartridge checkpoints: Stable-Baselines3 / rl-zoo archives
//! ([`from_sb3`]) and CleanRL state dicts ([`from_cleanrl`]), read in pure Rust (the PyTorch
//! files with `pytorch-reader`, SB3's `.zip` with `zip`; no Python, no libtorch).
//!
//! A converted model is an ordinary [`Checkpoint`] (so [`crate::to_onnx`] writes the same
//! self-describing ONNX model as `export --onnx`) plus the `source_*` ONNX metadata
//! ([`cartridge_contract::key::SOURCE_FORMAT`] and the keys after it). The game's ROM MD5 and
//! minimal action set come from the contract's ROM table
//! ([`cartridge_contract::roms::KNOWN_ROMS`]), so converting needs no ROM file.
//!
//! What does not fit Cartridge's networks (the Nature CNN on `[4, 84, 84]` u8 frames with
//! PPO or DQN heads, or CleanRL's CNN-LSTM on one frame) is refused with
//! [`Error::Unconvertible`], naming what the file holds and what is supported.

mod cleanrl;
mod sb3;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use cartridge_contract::roms::{self, KnownRom};
use cartridge_contract::{key, onnx_key};
use md5::{Digest, Md5};
use pytorch_reader::{DType, PytorchReader};

use crate::{Checkpoint, Error, Result, Tensor};

pub use cleanrl::from_cleanrl;
pub use sb3::from_sb3;

/// A converted foreign model.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The network and its metadata (game, ROM MD5, actions, steps trained where the source
    /// says).
    pub ckpt: Checkpoint,
    /// ONNX `metadata_props` beyond the checkpoint's: the `cartridge.source_*` keys.
    pub onnx_meta: Vec<(String, String)>,
    /// What was converted, in a few words (`SB3 2.9.2 PPO, ActorCriticCnnPolicy`).
    pub described: String,
}

/// The game a converted model plays: `spec` is a game name as `play --rom` takes it
/// (`breakout`, `BreakoutNoFrameskip-v4`, `ALE/Pong-v5`) or the path of a ROM file, known by
/// its MD5.
///
/// # Errors
/// [`Error::InvalidInput`] for a game or ROM not among ale-py 0.12.1's, or one `play` cannot
/// run (no ALE 0.6.0 settings, or a screen other than 210 lines); [`Error::Io`] for an
/// unreadable ROM file.
pub fn resolve_game(spec: &str) -> Result<&'static KnownRom> {
    let path = Path::new(spec);
    let rom = if spec.contains('/') && path.is_file() || spec.ends_with(".bin") {
        let bytes = fs::read(path).map_err(|err| Error::Io {
            action: "read the ROM",
            path: path.to_path_buf(),
            err,
        })?;
        let md5: String = Md5::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        roms::rom_for_md5(&md5).ok_or_else(|| {
            Error::InvalidInput(format!(
                "--rom {spec}: MD5 {md5} is not one of ale-py 0.12.1's ROMs; pass a game name \
                 (e.g. breakout) or one of its ROM files"
            ))
        })?
    } else {
        let game = roms::normalize_game(spec);
        roms::known_rom(&game).ok_or_else(|| {
            Error::InvalidInput(format!(
                "--rom {spec}: no game `{game}` among ale-py 0.12.1's ROMs (names as `play --rom` \
                 takes them: breakout, pong, space_invaders, ...)"
            ))
        })?
    };
    if rom.playable_actions().is_none() {
        return Err(Error::InvalidInput(format!(
            "--rom {spec}: `play` cannot run {} (the bundled ALE 0.6.0 has no settings for it, or \
             its screen is not 210 lines high), so a model for it cannot be played",
            rom.game
        )));
    }
    Ok(rom)
}

/// The `(key, value)` ONNX metadata of a converted model, keys under `cartridge.`.
fn source_meta(
    format: &str,
    path: &Path,
    info: &serde_json::Value,
    preprocessing: &str,
) -> Vec<(String, String)> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    vec![
        (onnx_key(key::SOURCE_FORMAT), format.to_owned()),
        (onnx_key(key::SOURCE_FILE), file),
        (onnx_key(key::SOURCE_INFO), info.to_string()),
        (
            onnx_key(key::SOURCE_PREPROCESSING),
            preprocessing.to_owned(),
        ),
    ]
}

/// An [`Error::Unconvertible`] for `path`.
fn unconvertible(path: &Path, problem: impl Into<String>) -> Error {
    Error::Unconvertible {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The f32 tensors of a `torch.save` file (a state dict), by their dotted names. `shown` is
/// the path named in errors (the archive an SB3 `policy.pth` came from).
fn read_state_dict(file: &Path, shown: &Path, what: &str) -> Result<BTreeMap<String, Tensor>> {
    let reader = PytorchReader::new(file).map_err(|e| {
        unconvertible(
            shown,
            format!("{what} is not a PyTorch file written by torch.save ({e})"),
        )
    })?;
    let mut out = BTreeMap::new();
    for (name, t) in reader.tensors() {
        if t.dtype() != DType::F32 {
            return Err(unconvertible(
                shown,
                format!(
                    "{what}: tensor `{name}` is {:?}; only float32 weights convert (call \
                     .float() on the model before saving)",
                    t.dtype()
                ),
            ));
        }
        let bytes = t
            .read()
            .map_err(|e| unconvertible(shown, format!("{what}: {e}")))?;
        let data = bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name.clone(), Tensor::new(t.shape().to_vec(), data)?);
    }
    Ok(out)
}

/// The checkpoint after [`Checkpoint::validate`], its errors (a shape that does not fit
/// Cartridge's network) named after the source file.
fn validated(ckpt: Checkpoint, path: &Path) -> Result<Checkpoint> {
    ckpt.validate().map_err(|e| {
        unconvertible(
            path,
            format!("{e}; Cartridge converts the Nature CNN (and CleanRL's CNN-LSTM) as trained"),
        )
    })?;
    Ok(ckpt)
}

/// Refuses a head whose action count differs from the game's minimal action set.
fn check_actions(path: &Path, found: usize, rom: &KnownRom) -> Result<()> {
    let want = rom.minimal_actions.len();
    if found == want {
        return Ok(());
    }
    Err(unconvertible(
        path,
        format!(
            "the model has {found} actions but {}'s minimal action set has {want} (ALE ids {:?}); \
             was it trained on another game, or with the full 18-action set? Pass the game it \
             was trained on with --rom",
            rom.game, rom.minimal_actions
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn games_resolve_by_name_and_env_id() {
        // ale-py 0.12.1's breakout.bin MD5 and ALE's Breakout minimal set NOOP FIRE RIGHT LEFT.
        let rom = resolve_game("BreakoutNoFrameskip-v4").expect("breakout");
        assert_eq!(rom.md5, "f34f08e5eb96e500e851a80be3277a56");
        assert_eq!(rom.minimal_actions, [0, 1, 3, 4]);
        assert_eq!(
            resolve_game("ALE/Pong-v5").expect("pong").minimal_actions,
            [0, 1, 3, 4, 11, 12]
        );
    }

    #[test]
    fn unknown_and_unplayable_games_are_refused() {
        let err = resolve_game("tetris_3000").expect_err("unknown");
        assert!(err.to_string().contains("no game `tetris_3000`"), "{err}");
        // Adventure's screen is 250 lines: play refuses it, so export does too.
        let err = resolve_game("adventure").expect_err("unplayable");
        assert!(err.to_string().contains("cannot run adventure"), "{err}");
    }
}
