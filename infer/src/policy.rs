//! ONNX policies through ONNX Runtime (`ort`, loaded at run time).
//!
//! The model contract (README, Contracts, "ONNX model"): input `obs` u8 `[batch, 4, 84, 84]` (the
//! graph scales by 1/255 itself); outputs `logits` f32 `[batch, A]` + `value` f32 `[batch, 1]`
//! for PPO, `q_values` f32 `[batch, A]` for DQN; `cartridge.*` metadata naming the algorithm,
//! game, ROM MD5 and action set. Foreign models (e.g. exported from PyTorch: f32 input taking
//! raw 0..=255 pixel values, no metadata) load when the caller supplies the algorithm.
//!
//! Recurrent models (`cartridge.recurrent`, e.g. the CNN-LSTM) take `obs` u8 `[batch, 1, 84,
//! 84]` plus state inputs f32 `[1, batch, hidden_size]` (`h`, `c`) and return the next state
//! (`h_out`, `c_out`) after their decision outputs. [`OnnxPolicy::decide`] carries that state from
//! one decision to the next; the caller zeroes it with [`OnnxPolicy::reset_state`] where an episode
//! starts. State inputs without that metadata, or of another shape, are refused at load.

use std::collections::HashMap;
use std::path::Path;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use cartridge_contract::{key, FRAME_HEIGHT, FRAME_WIDTH, ONNX_PREFIX};

use crate::rom::Rom;
use crate::{Error, Result};

/// The algorithm a policy was trained with, which decides which output is read
/// ([`Algo::decision_output`]).
pub use cartridge_contract::Algo;

/// Element type of the model's `obs` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// u8 pixels; the graph scales them (Cartridge's contract).
    U8,
    /// f32 holding raw 0..=255 pixel values (CleanRL-style models divide by 255 inside).
    F32,
}

/// What a model says about itself, from its graph and `cartridge.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Algorithm from metadata or from the caller.
    pub algo: Algo,
    /// Game name from metadata, if any.
    pub game: Option<String>,
    /// ROM MD5 from metadata, if any.
    pub rom_md5: Option<String>,
    /// ALE action ids of the action set from metadata, if any.
    pub actions: Option<Vec<i32>>,
    /// Number of actions of the decision output.
    pub num_actions: usize,
    /// Frames stacked in the input (the input's dimension 1).
    pub frame_stack: usize,
    /// Input element type.
    pub input: InputType,
    /// Name of the input tensor.
    pub input_name: String,
    /// Name of the output read for decisions (`logits` / `q_values` or the first output).
    pub decision_output: String,
    /// The state carried between decisions; `None` for a feed-forward model.
    pub recurrence: Option<Recurrence>,
    /// All `cartridge.*` metadata, key without the prefix.
    pub metadata: HashMap<String, String>,
}

/// What a recurrent model carries from one decision to the next, from its
/// `cartridge.recurrent`, `state_inputs`, `state_outputs` and `hidden_size` metadata (checked
/// against the graph's inputs and outputs at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    /// The kind of state (`lstm`).
    pub kind: String,
    /// State input names, in order (`h`, `c`); each f32 `[1, batch, hidden_size]`.
    pub inputs: Vec<String>,
    /// State output names in the order of `inputs`: output `i` is input `i` of the next step
    /// (`h_out`, `c_out`).
    pub outputs: Vec<String>,
    /// Units of each state tensor's last dimension.
    pub hidden_size: usize,
}

/// What the caller knows about a model that lacks metadata (CLI: `--algo`).
#[derive(Debug, Clone, Default)]
pub struct ModelOverrides {
    /// The algorithm, required for models without `cartridge.algo`.
    pub algo: Option<Algo>,
}

/// A loaded policy network.
#[derive(Debug)]
pub struct OnnxPolicy {
    session: Session,
    info: ModelInfo,
    /// Position of `info.decision_output` among the session's outputs.
    decision_index: usize,
    scratch_f32: Vec<f32>,
    /// A recurrent model's batch-1 state, one `hidden_size` vector per state input.
    state: Vec<Vec<f32>>,
    /// Position of each state output among the session's outputs, in the order of `state`.
    state_output_index: Vec<usize>,
}

/// One f32 output of a forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedOutput {
    /// Output name (`logits`, `value`, `q_values`).
    pub name: String,
    /// Shape, e.g. `[batch, A]`.
    pub shape: Vec<i64>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// The raw outputs of one batch-1 decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `logits` (PPO) or `q_values` (DQN), one per action.
    pub scores: Vec<f32>,
}

impl OnnxPolicy {
    /// Loads `path` with `threads` intra-op threads and checks it against the model contract.
    ///
    /// Errors: [`Error::RuntimeNotFound`], [`Error::InvalidModel`] (unreadable, truncated, or
    /// breaking the contract; the message says what and how to fix it).
    pub fn load(path: &Path, threads: usize, overrides: &ModelOverrides) -> Result<Self> {
        let env = crate::runtime::environment()?;
        let invalid = |reason: String| Error::InvalidModel {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(invalid("no such file".into()));
        }
        let configure = || -> std::result::Result<_, String> {
            let e = |e: ort::Error<_>| e.to_string();
            Session::builder(env)
                .map_err(|e| e.to_string())?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(e)?
                .with_intra_threads(threads.max(1))
                .map_err(e)?
                .with_inter_threads(1)
                .map_err(e)?
                .with_intra_op_spinning(false)
                .map_err(e)
        };
        let session = configure()
            .map_err(|e| invalid(format!("cannot configure ONNX Runtime: {e}")))?
            .commit_from_file(path)
            .map_err(|e| {
                invalid(format!(
                    "ONNX Runtime cannot load it ({e}); is it a complete .onnx file? re-export it \
                     with `export --onnx`"
                ))
            })?;
        let info = inspect(&session, overrides).map_err(invalid)?;
        let position = |name: &str| session.outputs().iter().position(|o| o.name() == name);
        let decision_index = position(&info.decision_output).unwrap_or(0);
        let (state, state_output_index) = match &info.recurrence {
            Some(r) => (
                vec![vec![0.0; r.hidden_size]; r.inputs.len()],
                // inspect checked that every state output exists.
                r.outputs.iter().filter_map(|o| position(o)).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        Ok(Self {
            session,
            info,
            decision_index,
            scratch_f32: Vec::new(),
            state,
            state_output_index,
        })
    }

    /// Zeroes a recurrent model's carried state (an episode starts); nothing for a
    /// feed-forward model.
    pub fn reset_state(&mut self) {
        for s in &mut self.state {
            s.fill(0.0);
        }
    }

    /// A recurrent model's carried state, one f32 `[hidden_size]` vector per state input
    /// (empty for a feed-forward model).
    pub fn state(&self) -> &[Vec<f32>] {
        &self.state
    }

    /// What the model declares.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Checks the model against the ROM it will play: action count equals the ROM's minimal
    /// action set, and metadata game / MD5 / action ids (when present) match.
    pub fn check_against(&self, rom: &Rom, minimal_actions: &[i32]) -> Result<()> {
        let i = &self.info;
        let mismatch = |reason: String| Error::ModelMismatch {
            game: rom.game.clone(),
            reason,
        };
        if let Some(g) = &i.game {
            if g != &rom.game {
                return Err(mismatch(format!(
                    "the model was trained on '{g}', not '{}'; play it with `--rom {g}`",
                    rom.game
                )));
            }
        }
        if i.num_actions != minimal_actions.len() {
            return Err(mismatch(format!(
                "the model has {} actions but {}'s minimal action set has {}; it was not made for this game",
                i.num_actions,
                rom.game,
                minimal_actions.len()
            )));
        }
        if let Some(a) = &i.actions {
            if a.as_slice() != minimal_actions {
                return Err(mismatch(format!(
                    "the model's ALE action ids {a:?} differ from the ROM's minimal action set {minimal_actions:?}"
                )));
            }
        }
        if let Some(m) = &i.rom_md5 {
            if m != &rom.md5 && rom.known {
                return Err(mismatch(format!(
                    "the model was trained on a ROM with MD5 {m}, this ROM ({}) has MD5 {}",
                    rom.path.display(),
                    rom.md5
                )));
            }
        }
        let stack = crate::preprocess::STACK;
        if i.frame_stack == 0 || i.frame_stack > stack {
            return Err(mismatch(format!(
                "the model stacks {} frames; Cartridge's runtime stacks {stack} (and feeds a \
                 model of fewer frames the newest ones)",
                i.frame_stack
            )));
        }
        Ok(())
    }

    /// Runs the network on a batch `[batch, frame_stack, 84, 84]` u8 and returns every output,
    /// in the model's output order. A recurrent model runs from the zero state here (each
    /// row a first step); [`Self::decide`] is the call that carries state.
    pub fn forward(&mut self, obs: &[u8], batch: usize) -> Result<Vec<NamedOutput>> {
        let zeros = self
            .info
            .recurrence
            .as_ref()
            .map(|r| vec![vec![0.0; batch * r.hidden_size]; r.inputs.len()])
            .unwrap_or_default();
        self.run(obs, batch, &zeros)
    }

    /// One forward pass with the given state inputs (`batch * hidden_size` each, in the order
    /// of the recurrence's inputs; none for a feed-forward model).
    fn run(&mut self, obs: &[u8], batch: usize, state: &[Vec<f32>]) -> Result<Vec<NamedOutput>> {
        let run_err = |e: ort::Error| Error::Inference(e.to_string());
        let shape = [batch, self.info.frame_stack, FRAME_HEIGHT, FRAME_WIDTH];
        let want = shape.iter().product::<usize>();
        if obs.len() != want {
            return Err(Error::Inference(format!(
                "observation has {} bytes; the model takes {shape:?} u8 = {want}",
                obs.len()
            )));
        }
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        let obs_value = match self.info.input {
            InputType::U8 => TensorRef::from_array_view((shape, obs))
                .map_err(run_err)?
                .into(),
            InputType::F32 => {
                self.scratch_f32.clear();
                self.scratch_f32.extend(obs.iter().map(|&v| v as f32));
                TensorRef::from_array_view((shape, self.scratch_f32.as_slice()))
                    .map_err(run_err)?
                    .into()
            }
        };
        inputs.push((self.info.input_name.clone(), obs_value));
        if let Some(r) = &self.info.recurrence {
            for (name, values) in r.inputs.iter().zip(state) {
                let t = TensorRef::from_array_view(([1, batch, r.hidden_size], values.as_slice()))
                    .map_err(run_err)?;
                inputs.push((name.clone(), t.into()));
            }
        }
        let outputs = self.session.run(inputs).map_err(run_err)?;
        let mut out = Vec::new();
        for (name, value) in outputs.iter() {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_err)?;
            out.push(NamedOutput {
                name: name.to_string(),
                shape: shape.to_vec(),
                values: data.to_vec(),
            });
        }
        Ok(out)
    }

    /// Decides on the runtime's stacked observation `[4, 84, 84]` u8 (a model of fewer frames
    /// gets the newest ones) and returns the decision output. A recurrent model runs from the
    /// carried state and carries its next state to the next call.
    pub fn decide(&mut self, obs: &[u8]) -> Result<Decision> {
        let frames = self.info.frame_stack * FRAME_HEIGHT * FRAME_WIDTH;
        let newest = &obs[obs.len().saturating_sub(frames)..];
        let state = std::mem::take(&mut self.state);
        let outs = self.run(newest, 1, &state);
        self.state = state;
        let mut outs = outs?;
        for (s, &k) in self.state.iter_mut().zip(&self.state_output_index) {
            match outs.get(k) {
                Some(o) if o.values.len() == s.len() => s.copy_from_slice(&o.values),
                _ => {
                    return Err(Error::Inference(format!(
                        "state output {k} missing or not [1, 1, {}]",
                        s.len()
                    )))
                }
            }
        }
        let i = self.decision_index;
        if i >= outs.len() {
            return Err(Error::Inference(format!(
                "output `{}` missing",
                self.info.decision_output
            )));
        }
        Ok(Decision {
            scores: outs.swap_remove(i).values,
        })
    }
}

fn inspect(
    session: &Session,
    overrides: &ModelOverrides,
) -> std::result::Result<ModelInfo, String> {
    let mut metadata = HashMap::new();
    if let Ok(meta) = session.metadata() {
        if let Ok(keys) = meta.custom_keys() {
            for k in keys {
                if let (Some(rest), Some(v)) = (k.strip_prefix(ONNX_PREFIX), meta.custom(&k)) {
                    metadata.insert(rest.to_string(), v);
                }
            }
        }
    }
    let recurrence = recurrence_of(session, &metadata)?;
    let inputs = session.inputs();
    let obs_inputs: Vec<_> = inputs
        .iter()
        .filter(|i| {
            recurrence
                .as_ref()
                .is_none_or(|r| !r.inputs.iter().any(|s| s == i.name()))
        })
        .collect();
    if obs_inputs.len() != 1 {
        let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
        return Err(if recurrence.is_none() && inputs.len() > 1 {
            format!(
                "it has inputs {names:?} but no `cartridge.recurrent` metadata: state inputs \
                 cannot be carried without it (which outputs feed them, how large they are); \
                 re-export the model with `export --onnx`, which writes that metadata"
            )
        } else {
            format!(
                "expected one observation input `obs` [batch, 4, 84, 84] (plus the state \
                 inputs a recurrent model declares), found inputs {names:?}"
            )
        });
    }
    let input = obs_inputs[0];
    let (ty, shape) = tensor_of(input.dtype())
        .ok_or_else(|| format!("input `{}` is not a tensor", input.name()))?;
    let input_type = match ty {
        TensorElementType::Uint8 => InputType::U8,
        TensorElementType::Float32 => InputType::F32,
        other => {
            return Err(format!(
            "input `{}` has element type {other:?}; expected uint8 (or float32 for foreign models)",
            input.name()
        ))
        }
    };
    let dims_ok =
        shape.len() == 4 && shape[2..] == [FRAME_HEIGHT as i64, FRAME_WIDTH as i64] && shape[1] > 0;
    if !dims_ok {
        return Err(format!(
            "input `{}` has shape {:?}; expected [batch, 4, 84, 84] ([batch, 1, 84, 84] for \
             a recurrent model)",
            input.name(),
            shape
        ));
    }
    let algo = match metadata.get(key::ALGO) {
        Some(a) => a.parse::<Algo>().map_err(|e| e.to_string())?,
        None => overrides.algo.ok_or_else(|| {
            "it has no `cartridge.algo` metadata (a foreign model?); pass --algo ppo|dqn to say \
             whether its first output is policy logits or Q-values"
                .to_string()
        })?,
    };
    let outputs = session.outputs();
    let wanted = algo.decision_output();
    let out = outputs
        .iter()
        .find(|o| o.name() == wanted)
        .or_else(|| metadata.is_empty().then(|| outputs.first()).flatten())
        .ok_or_else(|| {
            let names: Vec<&str> = outputs.iter().map(|o| o.name()).collect();
            format!("a {algo} model must have output `{wanted}`; this one has {names:?}")
        })?;
    let (oty, oshape) =
        tensor_of(out.dtype()).ok_or_else(|| format!("output `{}` is not a tensor", out.name()))?;
    if oty != TensorElementType::Float32 || oshape.len() != 2 || oshape[1] <= 0 {
        return Err(format!(
            "output `{}` must be float32 [batch, A]; it is {oty:?} {oshape:?}",
            out.name()
        ));
    }
    let actions = match metadata.get(key::ACTIONS) {
        Some(s) => Some(
            s.split(',')
                .map(|a| a.trim().parse::<i32>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| {
                    format!("metadata cartridge.actions '{s}' is not a list of ALE action ids")
                })?,
        ),
        None => None,
    };
    Ok(ModelInfo {
        algo,
        game: metadata.get(key::GAME).cloned(),
        rom_md5: metadata.get(key::ROM_MD5).cloned(),
        actions,
        num_actions: oshape[1] as usize,
        frame_stack: shape[1].max(0) as usize,
        input: input_type,
        input_name: input.name().to_string(),
        decision_output: out.name().to_string(),
        recurrence,
        metadata,
    })
}

/// The recurrence a model's metadata declares, checked against its graph: every state input
/// and output exists and is f32 `[1, batch, hidden_size]`. `None` without `recurrent` metadata.
fn recurrence_of(
    session: &Session,
    metadata: &HashMap<String, String>,
) -> std::result::Result<Option<Recurrence>, String> {
    let Some(kind) = metadata.get(key::RECURRENT) else {
        return Ok(None);
    };
    let get = |k: &str| {
        metadata.get(k).ok_or_else(|| {
            format!(
                "it declares a recurrent state (`cartridge.{}` = {kind}) but has no \
                 `cartridge.{k}` metadata; re-export the model with `export --onnx`",
                key::RECURRENT
            )
        })
    };
    let names = |k: &str| -> std::result::Result<Vec<String>, String> {
        let v: Vec<String> = get(k)?
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if v.is_empty() {
            return Err(format!("metadata `cartridge.{k}` names no tensors"));
        }
        Ok(v)
    };
    let hidden_text = get(key::HIDDEN_SIZE)?;
    let hidden_size = hidden_text
        .parse::<usize>()
        .ok()
        .filter(|&h| h > 0)
        .ok_or_else(|| {
            format!(
                "metadata `cartridge.{}` '{hidden_text}' is not a positive whole number",
                key::HIDDEN_SIZE
            )
        })?;
    let (inputs, outputs) = (names(key::STATE_INPUTS)?, names(key::STATE_OUTPUTS)?);
    if inputs.len() != outputs.len() {
        return Err(format!(
            "metadata names {} state inputs {inputs:?} but {} state outputs {outputs:?}; each \
             output must feed one input",
            inputs.len(),
            outputs.len()
        ));
    }
    let graph_inputs: Vec<_> = session
        .inputs()
        .iter()
        .map(|i| (i.name().to_string(), tensor_of(i.dtype())))
        .collect();
    let graph_outputs: Vec<_> = session
        .outputs()
        .iter()
        .map(|o| (o.name().to_string(), tensor_of(o.dtype())))
        .collect();
    for (role, wanted, graph) in [
        ("input", &inputs, &graph_inputs),
        ("output", &outputs, &graph_outputs),
    ] {
        for name in wanted {
            let Some((_, t)) = graph.iter().find(|(n, _)| n == name) else {
                let have: Vec<&str> = graph.iter().map(|(n, _)| n.as_str()).collect();
                return Err(format!(
                    "metadata names state {role} `{name}`, but the graph's {role}s are {have:?}"
                ));
            };
            let ok = matches!(t, Some((TensorElementType::Float32, s))
                if s.len() == 3 && s[0] == 1 && (s[1] == 1 || s[1] < 0) && s[2] == hidden_size as i64);
            if !ok {
                return Err(format!(
                    "state {role} `{name}` is {}; a {kind} state of hidden_size {hidden_size} \
                     must be float32 [1, batch, {hidden_size}]",
                    match t {
                        Some((ty, s)) => format!("{ty:?} {s:?}"),
                        None => "not a tensor".into(),
                    }
                ));
            }
        }
    }
    Ok(Some(Recurrence {
        kind: kind.clone(),
        inputs,
        outputs,
        hidden_size,
    }))
}

fn tensor_of(t: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match t {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}
