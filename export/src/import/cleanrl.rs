//! CleanRL state dicts (`torch.save(agent.state_dict(), path)`, the `.cleanrl_model` files).
//!
//! Cartridge's parameter names are CleanRL's (see [`crate::arch`]), so the tensors convert by
//! name: `ppo_atari.py` / `ppo_atari_envpool.py` `Agent` (`network.{0,2,4,7}`, `actor`,
//! `critic`), `dqn_atari.py` `QNetwork` (`network.{0,2,4,7,9}`) and `ppo_atari_lstm.py`
//! `Agent` (the same trunk on one frame, `lstm`, `actor`, `critic`). Every one of them
//! divides the u8 frames by 255 inside `forward`, as Cartridge's graph does.

use std::path::Path;

use cartridge_contract::roms::KnownRom;
use serde_json::json;

use super::{check_actions, read_state_dict, source_meta, unconvertible, validated, Converted};
use crate::arch::{ACTOR, CONV_LAYERS, LSTM_W_IH, Q_HEAD};
use crate::{Algo, Checkpoint, Metadata, Policy, Result};

/// How CleanRL's scripts make observations, where that differs from Cartridge's WarpFrame
/// (max-pool RGB, gray, then `INTER_AREA` resize).
pub const CLEANRL_PREPROCESSING: &str = "CleanRL's gym scripts (ppo_atari.py, dqn_atari.py, \
     ppo_atari_lstm.py) resize the max-pooled RGB frame to 84x84 and then gray it \
     (ResizeObservation before GrayScaleObservation); ppo_atari_envpool.py grays each frame \
     with ALE's palette, max-pools the gray frames, then resizes. Cartridge max-pools RGB, \
     grays, then resizes (the baselines and SB3 order), so the agent sees slightly different \
     pixels than in training.";

/// Converts a CleanRL state dict trained on `rom`'s game by `algo` (the state dict does not
/// name its learner; the heads found must agree with it).
///
/// # Errors
/// [`crate::Error::Unconvertible`] for a file that is not a PyTorch state dict, heads of the
/// other learner, a layout that is not one of the three above, a frame stack other than the
/// layout's (4, or 1 for the CNN-LSTM) or an action count other than the game's;
/// [`crate::Error::Io`] when the file cannot be read.
pub fn from_cleanrl(path: &Path, algo: Algo, rom: &KnownRom) -> Result<Converted> {
    let tensors = read_state_dict(path, path, "the file")?;
    let has = |name: &str| tensors.contains_key(name);
    let (found, policy, layout) = if has(LSTM_W_IH) {
        (Algo::Ppo, Policy::Lstm, "ppo_atari_lstm.py Agent")
    } else if has(ACTOR.0) {
        (
            Algo::Ppo,
            Policy::Cnn,
            "ppo_atari.py / ppo_atari_envpool.py Agent",
        )
    } else if has(Q_HEAD.0) {
        (Algo::Dqn, Policy::Cnn, "dqn_atari.py QNetwork")
    } else {
        let names: Vec<&str> = tensors.keys().take(8).map(String::as_str).collect();
        return Err(unconvertible(
            path,
            format!(
                "not a CleanRL Atari state dict: found tensors {names:?}; supported are \
                 ppo_atari.py's Agent (network.0 .. network.7, actor, critic), dqn_atari.py's \
                 QNetwork (network.0 .. network.9) and ppo_atari_lstm.py's Agent (with lstm)"
            ),
        ));
    };
    if found != algo {
        return Err(unconvertible(
            path,
            format!("the state dict is a {layout} (a {found} agent), not a {algo} one; pass --algo {found}"),
        ));
    }
    let first = CONV_LAYERS[0].weight;
    let stack = tensors.get(first).and_then(|t| t.shape.get(1).copied());
    if stack != Some(policy.frame_stack()) {
        return Err(unconvertible(
            path,
            format!(
                "`{first}` takes {} input planes; the {layout} takes {} stacked 84x84 gray \
                 frames (FrameStack({})) and no other frame stack converts",
                stack.map_or("no".to_owned(), |s| s.to_string()),
                policy.frame_stack(),
                policy.frame_stack()
            ),
        ));
    }
    let head = if algo == Algo::Dqn { Q_HEAD.0 } else { ACTOR.0 };
    let n_actions = tensors.get(head).and_then(|t| t.shape.first().copied());
    check_actions(path, n_actions.unwrap_or(0), rom)?;

    let meta =
        Metadata::new(algo, rom.game, rom.md5, rom.minimal_actions.to_vec()).with_policy(policy);
    let ckpt = validated(Checkpoint { meta, tensors }, path)?;
    let info = json!({ "layout": layout, "steps_trained": "unknown (a state dict does not say)" });
    Ok(Converted {
        ckpt,
        onnx_meta: source_meta("cleanrl", path, &info, CLEANRL_PREPROCESSING),
        described: format!("CleanRL {layout}"),
    })
}
