//! Stable-Baselines3 / rl-zoo model archives (`model.save("x")` writes `x.zip`).
//!
//! The archive holds `data` (JSON: the algorithm's attributes, the policy class, the
//! observation and action spaces, `policy_kwargs`), `policy.pth` (the policy's state dict,
//! a `torch.save` file), `_stable_baselines3_version` and files that are not needed here
//! (the optimizer, `pytorch_variables.pth`, `system_info.txt`).
//!
//! Supported: PPO and A2C with `CnnPolicy` (`ActorCriticCnnPolicy`) and DQN with `CnnPolicy`,
//! SB3's NatureCNN with its default 512 features and no extra hidden layers, on SB3's Atari
//! observations (AtariWrapper, VecFrameStack(4), VecTransposeImage: u8 `[4, 84, 84]`, the
//! newest frame last, which is Cartridge's layout). Parameter names map as:
//!
//! | SB3 (PPO / A2C) | SB3 (DQN) | Cartridge |
//! |---|---|---|
//! | `features_extractor.cnn.{0,2,4}` | `q_net.features_extractor.cnn.{0,2,4}` | `network.{0,2,4}` |
//! | `features_extractor.linear.0` | `q_net.features_extractor.linear.0` | `network.7` |
//! | `action_net` | `q_net.q_net.0` | `actor` / `network.9` |
//! | `value_net` | | `critic` |
//!
//! PPO's `pi_features_extractor.*` and `vf_features_extractor.*` are the shared extractor
//! saved under two more names (`share_features_extractor=True`, the default) and must equal
//! it; DQN's `q_net_target.*` is ignored. With `normalize_images=False` the network saw raw
//! 0..255 values, so the first convolution's weights are scaled by 255 to fit Cartridge's
//! graph, which divides by 255.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use cartridge_contract::roms::KnownRom;
use serde_json::{json, Map, Value};

use super::{check_actions, read_state_dict, source_meta, unconvertible, validated, Converted};
use crate::arch::{ACTOR, CONV_LAYERS, CRITIC, FC, Q_HEAD};
use crate::{Algo, Checkpoint, Error, Metadata, Result, Tensor};

/// SB3's Atari observations are made as Cartridge's.
pub const SB3_PREPROCESSING: &str = "SB3 AtariWrapper + VecFrameStack(4): NoopReset, \
     MaxAndSkip(4) over RGB, WarpFrame (gray, then INTER_AREA resize to 84x84), 4 frames \
     newest last; the same frames as Cartridge's";

/// The SB3 learner, from the policy's module and the algorithm's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learner {
    Ppo,
    A2c,
    Dqn,
}

impl Learner {
    fn name(self) -> &'static str {
        match self {
            Learner::Ppo => "PPO",
            Learner::A2c => "A2C",
            Learner::Dqn => "DQN",
        }
    }

    /// The CNN policy class SB3 names for this learner's `CnnPolicy`.
    fn cnn_class(self) -> &'static str {
        match self {
            Learner::Ppo | Learner::A2c => "ActorCriticCnnPolicy",
            Learner::Dqn => "CnnPolicy",
        }
    }
}

/// Converts an SB3 archive trained on `rom`'s game.
///
/// # Errors
/// [`Error::Unconvertible`] naming what was found for: a file that is not an SB3 archive (not
/// a zip, or without `data` / `policy.pth`), a learner or policy class other than the
/// supported ones (an MLP or multi-input policy, QR-DQN, SAC, ...), an observation space
/// other than u8 `[4, 84, 84]` (another frame stack, a non-image space), an action count
/// other than the game's minimal action set, separate actor and critic extractors, extra
/// hidden layers (`net_arch`) or another features size; [`Error::Io`] when the file cannot
/// be read.
pub fn from_sb3(path: &Path, rom: &KnownRom) -> Result<Converted> {
    let file = File::open(path).map_err(|err| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        err,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        unconvertible(
            path,
            format!("not a Stable-Baselines3 model archive (the .zip `model.save` writes): {e}"),
        )
    })?;
    let entries: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let data_text =
        String::from_utf8_lossy(&entry(&mut archive, path, "data", &entries)?).into_owned();
    let data: Value = serde_json::from_str(&data_text).map_err(|e| {
        unconvertible(
            path,
            format!("the archive's `data` is not JSON ({e}); is it an SB3 model?"),
        )
    })?;
    let version = entry(&mut archive, path, "_stable_baselines3_version", &entries)
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());

    let (module, class) = policy_class(&data);
    let learner = learner(path, &data, &module, &class)?;
    let (frames, n_actions) = spaces(path, &data)?;
    if frames != cartridge_contract::FRAME_STACK {
        return Err(unconvertible(
            path,
            format!(
                "frame stack {frames} (observation [{frames}, 84, 84]); Cartridge's CNN takes 4 \
                 stacked frames (VecFrameStack(n_stack=4))"
            ),
        ));
    }
    check_actions(path, n_actions, rom)?;
    let normalize_images = data
        .get("policy_kwargs")
        .and_then(|k| k.get("normalize_images"))
        .and_then(Value::as_bool)
        .unwrap_or(true);

    let policy_bytes = entry(&mut archive, path, "policy.pth", &entries)?;
    let tmp = tempfile::NamedTempFile::new()
        .and_then(|mut f| f.write_all(&policy_bytes).map(|()| f))
        .map_err(|err| Error::Io {
            action: "unpack policy.pth into a temporary file for",
            path: path.to_path_buf(),
            err,
        })?;
    let state = read_state_dict(tmp.path(), path, "policy.pth")?;
    let mut tensors = map_tensors(path, learner, state)?;
    if !normalize_images {
        if let Some(w) = tensors.get_mut(CONV_LAYERS[0].weight) {
            w.data.iter_mut().for_each(|v| *v *= 255.0);
        }
    }

    let algo = match learner {
        Learner::Ppo | Learner::A2c => Algo::Ppo,
        Learner::Dqn => Algo::Dqn,
    };
    let mut meta = Metadata::new(algo, rom.game, rom.md5, rom.minimal_actions.to_vec());
    meta.global_step = data
        .get("num_timesteps")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    meta.seed = data.get("seed").and_then(Value::as_u64).unwrap_or(0);
    meta.args = hyperparameters(&data).to_string();
    let ckpt = validated(Checkpoint { meta, tensors }, path)?;
    let class_path = format!("{module}.{class}");
    let info = json!({
        "sb3_version": version,
        "algo": learner.name(),
        "policy_class": class_path,
        "normalize_images": normalize_images,
        "num_timesteps": ckpt.meta.global_step,
    });
    Ok(Converted {
        onnx_meta: source_meta("sb3", path, &info, SB3_PREPROCESSING),
        described: format!(
            "SB3 {version} {} ({class}, {} steps trained)",
            learner.name(),
            ckpt.meta.global_step
        ),
        ckpt,
    })
}

/// The bytes of archive entry `name`.
fn entry(
    archive: &mut zip::ZipArchive<File>,
    path: &Path,
    name: &str,
    entries: &[String],
) -> Result<Vec<u8>> {
    let mut f = archive.by_name(name).map_err(|_| {
        unconvertible(
            path,
            format!(
                "the archive has no `{name}`, so it is not a Stable-Baselines3 model (it holds \
                 {entries:?}; SB3's hold data, policy.pth, _stable_baselines3_version, ...)"
            ),
        )
    })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| unconvertible(path, format!("the archive's `{name}` is corrupt: {e}")))?;
    Ok(bytes)
}

/// The policy class as `(module, class name)`. SB3 stores a class as its `__dict__`'s
/// printable entries: `__module__`, and the class's own `__init__` as
/// `<function NAME.__init__ at 0x...>` (empty when absent).
fn policy_class(data: &Value) -> (String, String) {
    let pc = data.get("policy_class");
    let module = pc
        .and_then(|p| p.get("__module__"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let class = pc
        .and_then(|p| p.get("__init__"))
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("<function "))
        .and_then(|s| s.split_once(".__init__"))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_default();
    (module, class)
}

/// Which learner the archive is, refusing any other learner or policy class.
fn learner(path: &Path, data: &Value, module: &str, class: &str) -> Result<Learner> {
    let learner = match module {
        "stable_baselines3.common.policies" if data.get("clip_range").is_some() => Learner::Ppo,
        "stable_baselines3.common.policies" => Learner::A2c,
        "stable_baselines3.dqn.policies" => Learner::Dqn,
        other => {
            return Err(unconvertible(
                path,
                format!(
                    "policy class {other}.{class} is not supported; supported are SB3's PPO and \
                     A2C with CnnPolicy (ActorCriticCnnPolicy) and DQN with CnnPolicy"
                ),
            ))
        }
    };
    if class != learner.cnn_class() {
        let kind = if class.contains("MultiInput") {
            "a multi-input (Dict observation) policy"
        } else {
            "an MLP policy (MlpPolicy)"
        };
        return Err(unconvertible(
            path,
            format!(
                "{} with policy class {class}: {kind}; only CnnPolicy ({}) on Atari frames \
                 converts",
                learner.name(),
                learner.cnn_class()
            ),
        ));
    }
    Ok(learner)
}

/// `(frame stack, action count)` from the spaces, refusing anything but u8 `[S, 84, 84]`
/// image observations and a discrete action space.
fn spaces(path: &Path, data: &Value) -> Result<(usize, usize)> {
    let obs = data.get("observation_space").unwrap_or(&Value::Null);
    let obs_type = obs.get(":type:").and_then(Value::as_str).unwrap_or("none");
    let shape: Vec<usize> = obs
        .get("_shape")
        .or_else(|| obs.get("shape"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    let dtype = obs.get("dtype").and_then(Value::as_str).unwrap_or("none");
    let atari = obs_type.contains("spaces.box.Box")
        && dtype == "uint8"
        && shape.len() == 3
        && shape[1..]
            == [
                cartridge_contract::FRAME_HEIGHT,
                cartridge_contract::FRAME_WIDTH,
            ];
    if !atari {
        return Err(unconvertible(
            path,
            format!(
                "observation space {obs_type} of shape {shape:?} and dtype {dtype} is not Atari \
                 frames; Cartridge converts policies on u8 [4, 84, 84] (SB3's AtariWrapper with \
                 VecFrameStack(4))"
            ),
        ));
    }
    let act = data.get("action_space").unwrap_or(&Value::Null);
    let act_type = act.get(":type:").and_then(Value::as_str).unwrap_or("none");
    let n = act.get("n").and_then(|n| match n {
        Value::String(s) => s.parse::<usize>().ok(),
        other => other.as_u64().map(|v| v as usize),
    });
    match n {
        Some(n) if act_type.contains("spaces.discrete.Discrete") => Ok((shape[0], n)),
        _ => Err(unconvertible(
            path,
            format!("action space {act_type} is not Discrete; Atari policies choose among the game's actions"),
        )),
    }
}

/// A Cartridge layer's `(weight, bias)` names.
type Param = (&'static str, &'static str);

/// SB3's names to Cartridge's, refusing what does not fit.
fn map_tensors(
    path: &Path,
    learner: Learner,
    mut state: BTreeMap<String, Tensor>,
) -> Result<BTreeMap<String, Tensor>> {
    let (trunk, heads): (&str, Vec<(&str, Param)>) = match learner {
        Learner::Dqn => {
            state.retain(|k, _| !k.starts_with("q_net_target."));
            ("q_net.features_extractor.", vec![("q_net.q_net.0", Q_HEAD)])
        }
        Learner::Ppo | Learner::A2c => (
            "features_extractor.",
            vec![("action_net", ACTOR), ("value_net", CRITIC)],
        ),
    };
    if learner != Learner::Dqn {
        if !state.keys().any(|k| k.starts_with(trunk)) {
            return Err(unconvertible(
                path,
                "the actor and the critic have separate features extractors \
                 (share_features_extractor=False); Cartridge's network shares one trunk",
            ));
        }
        // The shared extractor is saved under all three names; they must hold the same values.
        for alias in ["pi_features_extractor.", "vf_features_extractor."] {
            let names: Vec<String> = state
                .keys()
                .filter(|k| k.starts_with(alias))
                .cloned()
                .collect();
            for name in names {
                let own = format!("{trunk}{}", &name[alias.len()..]);
                let same = state.get(&own) == state.get(&name);
                if !same {
                    return Err(unconvertible(
                        path,
                        format!(
                            "`{name}` differs from `{own}`: the actor and the critic have separate \
                             features extractors; Cartridge's network shares one trunk"
                        ),
                    ));
                }
                state.remove(&name);
            }
        }
    }
    if let Some(extra) = state
        .keys()
        .find(|k| k.contains("mlp_extractor.") && k.ends_with("weight"))
    {
        return Err(unconvertible(
            path,
            format!(
                "`{extra}`: the policy has hidden layers between the features and the heads \
                 (net_arch); Cartridge's heads sit directly on the 512 features"
            ),
        ));
    }
    let mut renames: Vec<(String, &str)> = Vec::new();
    for (i, conv) in CONV_LAYERS.iter().enumerate() {
        let sb3 = ["cnn.0", "cnn.2", "cnn.4"][i];
        renames.push((format!("{trunk}{sb3}.weight"), conv.weight));
        renames.push((format!("{trunk}{sb3}.bias"), conv.bias));
    }
    renames.push((format!("{trunk}linear.0.weight"), FC.0));
    renames.push((format!("{trunk}linear.0.bias"), FC.1));
    for (sb3, (w, b)) in heads {
        renames.push((format!("{sb3}.weight"), w));
        renames.push((format!("{sb3}.bias"), b));
    }
    let mut out = BTreeMap::new();
    for (from, to) in renames {
        let Some(t) = state.remove(&from) else {
            return Err(unconvertible(
                path,
                format!(
                    "policy.pth has no `{from}`: not SB3's NatureCNN {} (a custom features \
                     extractor?)",
                    learner.cnn_class()
                ),
            ));
        };
        out.insert(to.to_owned(), t);
    }
    if let Some(extra) = state.keys().next() {
        return Err(unconvertible(
            path,
            format!(
                "policy.pth holds `{extra}`, which Cartridge's network has no place for (extra \
                 layers, net_arch or a custom extractor); only SB3's plain {} converts",
                learner.cnn_class()
            ),
        ));
    }
    Ok(out)
}

/// The algorithm's plain hyperparameters (numbers, booleans and strings that are not object
/// dumps) from `data`, for the checkpoint's `args`.
fn hyperparameters(data: &Value) -> Value {
    let mut out = Map::new();
    if let Some(obj) = data.as_object() {
        for (k, v) in obj {
            let plain = match v {
                Value::Number(_) | Value::Bool(_) => true,
                Value::String(s) => !s.starts_with('<'),
                _ => false,
            };
            if plain && !k.starts_with('_') {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}
