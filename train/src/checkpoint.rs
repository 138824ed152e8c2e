//! Run checkpoints: `RUN/checkpoints/step-<global_step>/` holding
//!
//! - `model.safetensors`: the network in the checkpoint format of the README's Contracts (written by
//!   [`cartridge_export::Checkpoint`], metadata with the full args as JSON);
//! - `optimizer.safetensors`: Adam's moments `m.<param>`, `v.<param>` and its step count;
//! - `state.json`: counters ([`RunState`]);
//! - DQN only: `target.safetensors` (the target network, same format as the model) and, with
//!   `--save-replay`, `replay.bin` (written by the replay memory itself, [`SaveToFile`]).
//!
//! Each file is written atomically, then `RUN/checkpoints/latest` (the folder name) is
//! replaced atomically, so an interrupted save leaves the previous checkpoint in charge.
//! Older step folders are removed after the pointer moves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cartridge_export::{param_specs, write_atomic, Algo, Arch, Checkpoint, Tensors};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::adam::Adam;
use crate::network::to_export;
use crate::{Error, Result};

/// Counters a resumed run continues from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState<A> {
    /// Agent steps taken (all environments).
    pub global_step: u64,
    /// PPO: iterations completed (each a rollout of `num_envs * num_steps` agent steps and
    /// an update); 0 in a DQN run.
    #[serde(default)]
    pub iterations: u64,
    /// DQN: gradient steps taken; 0 in a PPO run.
    #[serde(default)]
    pub gradient_steps: u64,
    /// Full games finished.
    pub episodes: u64,
    /// Wall seconds trained before this process (for steps/s and the model card).
    pub train_seconds: f64,
    /// Times the run was resumed; seeds fresh environment streams on each resume.
    pub resumes: u64,
    /// MPI ranks the run trains on (1: a single process; older checkpoints lack the field).
    /// The global batch is `ranks * num_envs * num_steps`, so a resume must keep it.
    #[serde(default = "one")]
    pub ranks: u64,
    /// One entry per process that trained the run (its start and each resume), with the
    /// run-time settings it trained with; older checkpoints lack it.
    #[serde(default)]
    pub history: Vec<Segment>,
    /// The learning arguments (what a resumed run must keep).
    pub args: A,
    /// Checkpoints written before 2026-11-30 kept either counter as `iteration`; [`load`]
    /// moves it to the algorithm's own counter.
    #[serde(default, rename = "iteration", skip_serializing)]
    legacy_iteration: Option<u64>,
}

fn one() -> u64 {
    1
}

/// How one process trained a run: from which agent step, on what and in which precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Agent step the process started (or resumed) at.
    pub from_step: u64,
    /// The device, as libtorch names it (`Cpu`, `Cuda(0)`).
    pub device: String,
    /// The trunk's precision: `fp32` or `bf16` ([`crate::precision::Precision`]).
    pub precision: String,
    /// libtorch intra-op threads.
    pub threads: usize,
    /// MPI ranks.
    pub ranks: u64,
}

impl<A> RunState<A> {
    /// Moves a pre-2026-11-30 `iteration` counter to `algo`'s own counter.
    fn adopt_legacy_counter(&mut self, algo: Algo) {
        if let Some(n) = self.legacy_iteration.take() {
            match algo {
                Algo::Ppo => self.iterations = n,
                Algo::Dqn => self.gradient_steps = n,
            }
        }
    }

    /// Counters of a new run.
    pub fn new(args: A) -> Self {
        Self {
            global_step: 0,
            iterations: 0,
            gradient_steps: 0,
            episodes: 0,
            train_seconds: 0.0,
            resumes: 0,
            ranks: 1,
            history: Vec::new(),
            args,
            legacy_iteration: None,
        }
    }
}

/// State an algorithm saves to a file of its own in a checkpoint (DQN's replay memory), so
/// this module does not depend on the algorithm that owns it.
pub trait SaveToFile {
    /// Writes the state to `path` (atomically: a temporary file, then a rename).
    fn save_to(&self, path: &Path) -> Result<()>;
}

/// What a checkpoint holds besides the counters.
#[allow(missing_debug_implementations)] // holds a `dyn SaveToFile`
pub struct Snapshot<'a> {
    /// Which network `model` is (its Adam moments follow its [`param_specs`]).
    pub arch: Arch,
    /// Network weights and metadata.
    pub model: Checkpoint,
    /// The optimizer of `model`'s parameters (in [`param_specs`] order).
    pub adam: &'a Adam,
    /// DQN's target network.
    pub target: Option<Tensors>,
    /// DQN's replay memory (with `--save-replay`), written as `replay.bin`.
    pub replay: Option<&'a dyn SaveToFile>,
}

/// Where checkpoints of a run live.
pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// Saves a checkpoint of `snap` and `state` (see the module docs).
pub fn save<A: Serialize>(run: &Path, snap: &Snapshot<'_>, state: &RunState<A>) -> Result<PathBuf> {
    let root = checkpoints_dir(run);
    let name = format!("step-{:012}", state.global_step);
    let dir = root.join(&name);
    std::fs::create_dir_all(&dir)?;
    snap.model.write(dir.join("model.safetensors"))?;
    let n_actions = snap.model.meta.actions.len();
    write_atomic(
        dir.join("optimizer.safetensors"),
        &optimizer_bytes(snap.arch, n_actions, snap.adam)?,
    )?;
    if let Some(t) = &snap.target {
        Checkpoint {
            meta: snap.model.meta.clone(),
            tensors: t.clone(),
        }
        .write(dir.join("target.safetensors"))?;
    }
    if let Some(r) = snap.replay {
        r.save_to(&dir.join("replay.bin"))?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Log(e.to_string()))?;
    write_atomic(dir.join("state.json"), &json)?;
    write_atomic(root.join("latest"), name.as_bytes())?;
    for e in std::fs::read_dir(&root)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("step-") && n != name {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(dir)
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Loaded<A> {
    /// Network weights and metadata.
    pub model: Checkpoint,
    /// Adam step count.
    pub adam_step: i64,
    /// Adam moments by parameter name: `(m, v)`.
    pub moments: HashMap<String, (cartridge_export::Tensor, cartridge_export::Tensor)>,
    /// Counters.
    pub state: RunState<A>,
    /// DQN's target network, when saved.
    pub target: Option<Tensors>,
    /// The step folder it came from.
    pub dir: PathBuf,
}

impl<A> Loaded<A> {
    /// The saved replay memory file, if the run saved one.
    pub fn replay_path(&self) -> Option<PathBuf> {
        let p = self.dir.join("replay.bin");
        p.exists().then_some(p)
    }
}

/// Loads the latest checkpoint of a run; any missing, corrupt or inconsistent file is an
/// [`Error::Resume`] naming it.
pub fn load<A: DeserializeOwned>(run: &Path) -> Result<Loaded<A>> {
    let bad = |path: PathBuf, reason: String| Error::Resume { path, reason };
    let root = checkpoints_dir(run);
    let latest = root.join("latest");
    let name = std::fs::read_to_string(&latest).map_err(|e| {
        bad(
            latest.clone(),
            format!("no checkpoint pointer ({e}); is this a run folder written by `train`?"),
        )
    })?;
    let dir = root.join(name.trim());
    let model = Checkpoint::read(dir.join("model.safetensors"))
        .map_err(|e| bad(dir.join("model.safetensors"), e.to_string()))?;
    let state_path = dir.join("state.json");
    let mut state: RunState<A> = std::fs::read(&state_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| bad(state_path.clone(), format!("unreadable counters: {e}")))?;
    state.adopt_legacy_counter(model.meta.algo);
    if state.global_step != model.meta.global_step {
        return Err(bad(
            dir,
            format!(
                "model is at step {} but state.json at {}",
                model.meta.global_step, state.global_step
            ),
        ));
    }
    let opt_path = dir.join("optimizer.safetensors");
    let bytes = std::fs::read(&opt_path).map_err(|e| bad(opt_path.clone(), e.to_string()))?;
    let (adam_step, moments) =
        parse_optimizer(&bytes).map_err(|reason| bad(opt_path.clone(), reason))?;
    for name in model.tensors.keys() {
        let (m, _) = moments
            .get(name)
            .ok_or_else(|| bad(opt_path.clone(), format!("no Adam moments for {name}")))?;
        if m.shape != model.tensors[name].shape {
            return Err(bad(
                opt_path,
                format!("Adam moments of {name} have the wrong shape"),
            ));
        }
    }
    let target_path = dir.join("target.safetensors");
    let target = if target_path.exists() {
        let t =
            Checkpoint::read(&target_path).map_err(|e| bad(target_path.clone(), e.to_string()))?;
        Some(t.tensors)
    } else {
        None
    };
    Ok(Loaded {
        model,
        adam_step,
        moments,
        state,
        target,
        dir,
    })
}

/// Puts loaded moments into `adam` (parameters in [`param_specs`] order of `arch`, the
/// network being trained); refuses a checkpoint whose metadata names another network.
pub fn restore_adam<A>(adam: &mut Adam, loaded: &Loaded<A>, arch: Arch) -> Result<()> {
    let saved = loaded.model.meta.network()?;
    if saved != arch {
        return Err(Error::Resume {
            path: loaded.dir.clone(),
            reason: format!("the checkpoint holds a {saved} network, not {arch}"),
        });
    }
    let specs = param_specs(arch, loaded.model.meta.actions.len());
    let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
    adam.step = loaded.adam_step;
    for (i, name) in names.iter().enumerate() {
        let (m, v) = &loaded.moments[*name];
        let dev = adam.m[i].device();
        let to = |t: &cartridge_export::Tensor| {
            let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            crate::tensors::from_f32(&t.data, &shape, dev)
        };
        adam.m[i] = to(m);
        adam.v[i] = to(v);
    }
    Ok(())
}

fn optimizer_bytes(arch: Arch, n_actions: usize, adam: &Adam) -> Result<Vec<u8>> {
    let specs = param_specs(arch, n_actions);
    let mut tensors = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        tensors.push((format!("m.{}", s.name), to_export(&adam.m[i])?));
        tensors.push((format!("v.{}", s.name), to_export(&adam.v[i])?));
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, t)| (n, t.shape.clone(), t.to_le_bytes()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Log(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([("adam_step".to_string(), adam.step.to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Log(e.to_string()))
}

type Moments = HashMap<String, (cartridge_export::Tensor, cartridge_export::Tensor)>;

fn parse_optimizer(bytes: &[u8]) -> std::result::Result<(i64, Moments), String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let step = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("adam_step"))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or("no adam_step in its metadata")?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut m: HashMap<String, cartridge_export::Tensor> = HashMap::new();
    let mut v: HashMap<String, cartridge_export::Tensor> = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!("{name} is not f32"));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t = cartridge_export::Tensor::new(view.shape().to_vec(), data)
            .map_err(|e| e.to_string())?;
        if let Some(p) = name.strip_prefix("m.") {
            m.insert(p.to_string(), t);
        } else if let Some(p) = name.strip_prefix("v.") {
            v.insert(p.to_string(), t);
        } else {
            return Err(format!("unexpected tensor {name}"));
        }
    }
    let mut out = HashMap::new();
    for (k, mt) in m {
        let vt = v.remove(&k).ok_or(format!("m.{k} without v.{k}"))?;
        out.insert(k, (mt, vt));
    }
    Ok((step, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state.json as runs wrote it before the counters were split (this one is the
    /// committed Breakout run's at 5,668,864 steps, args shortened).
    const LEGACY: &str = r#"{"global_step": 5668864, "iteration": 5536, "episodes": 6929,
        "train_seconds": 8693.939451917, "resumes": 3, "args": {}}"#;

    #[test]
    fn legacy_iteration_becomes_the_algorithms_counter_and_is_not_written_back() {
        let mut ppo: RunState<serde_json::Value> = serde_json::from_str(LEGACY).expect("json");
        ppo.adopt_legacy_counter(Algo::Ppo);
        assert_eq!((ppo.iterations, ppo.gradient_steps), (5536, 0));
        let mut dqn: RunState<serde_json::Value> = serde_json::from_str(LEGACY).expect("json");
        dqn.adopt_legacy_counter(Algo::Dqn);
        assert_eq!((dqn.iterations, dqn.gradient_steps), (0, 5536));
        let written = serde_json::to_value(&ppo).expect("json");
        assert_eq!(written["iterations"], 5536);
        assert_eq!(written["gradient_steps"], 0);
        assert!(written.get("iteration").is_none());
        let back: RunState<serde_json::Value> = serde_json::from_value(written).expect("json");
        assert_eq!(back, ppo);
    }
}
