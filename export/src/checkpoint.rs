//! Training checkpoints: network parameters plus the metadata that makes them
//! self-describing.
//!
//! File format: [safetensors](https://github.com/huggingface/safetensors), every tensor F32
//! (little endian, row-major), tensor names equal to the ONNX initializer names
//! ([`crate::arch::param_specs`]), and the safetensors `__metadata__` string map holding
//! [`Metadata`] under the keys of [`METADATA_KEYS`] (and, for a recurrent policy, of
//! [`RECURRENT_KEYS`]). Optimizer state and resume counters are not part of this file.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use cartridge_contract::{key, tensor, Policy, RECURRENT_LSTM};

use crate::arch::{param_specs, random_init, Algo, Arch};
use crate::{write_atomic, Error, Result, Tensor, Tensors};

pub use cartridge_contract::{
    ARCH_NATURE_CNN, ARCH_NATURE_CNN_LSTM, FORMAT_VERSION, OBS_ENCODING as OBS_GRAY84,
    RECURRENT_KEYS,
};
/// Highest ALE action id (`PLAYER_A_DOWNLEFTFIRE`); ALE has 18 actions.
pub const MAX_ALE_ACTION: u32 = 17;

/// Every key of the safetensors `__metadata__` map, in the order [`Metadata::to_map`] and the
/// error messages list them. All are required.
pub use cartridge_contract::CHECKPOINT_KEYS as METADATA_KEYS;

/// What a checkpoint is: which learner, which game and ROM, which actions the outputs map
/// to, and how it was trained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Learner; decides the network heads.
    pub algo: Algo,
    /// Game name, the ROM file stem (`breakout`): lower-case ASCII letters, digits and `_`.
    pub game: String,
    /// MD5 of the ROM the agent was trained on: 32 lower-case hex digits.
    pub rom_md5: String,
    /// ALE action ids of the game's minimal action set; output `i` of the network means
    /// `actions[i]`. Non-empty, distinct, each `<= 17`.
    pub actions: Vec<u32>,
    /// Network architecture, [`Policy::arch`]: [`ARCH_NATURE_CNN`] or [`ARCH_NATURE_CNN_LSTM`]
    /// (PPO only); see [`Metadata::policy`].
    pub arch: String,
    /// Emulator frames per agent step (MaxAndSkip), at least 1; 4 by default.
    pub frame_skip: u32,
    /// Frames stacked into one observation, the network's input planes: must be the
    /// policy's [`Policy::frame_stack`] (4 for the CNN, 1 for the CNN-LSTM).
    pub frame_stack: u32,
    /// Observation encoding; [`OBS_GRAY84`].
    pub obs: String,
    /// Agent steps trained (summed over environments); 0 for a random init.
    pub global_step: u64,
    /// Seed of the training run (or of the random init).
    pub seed: u64,
    /// The training arguments as a JSON document; `"{}"` for a random init.
    pub args: String,
}

impl Metadata {
    /// Metadata with the defaults of a fresh run: `nature_cnn`, frame skip 4, frame stack 4,
    /// `gray84x84`, global step 0, seed 0, args `{}`. Call [`Metadata::validate`] (or let
    /// [`Checkpoint::write`] do it) before relying on the caller-supplied fields.
    pub fn new(
        algo: Algo,
        game: impl Into<String>,
        rom_md5: impl Into<String>,
        actions: Vec<u32>,
    ) -> Metadata {
        Metadata {
            algo,
            game: game.into(),
            rom_md5: rom_md5.into(),
            actions,
            arch: ARCH_NATURE_CNN.to_owned(),
            frame_skip: 4,
            frame_stack: cartridge_contract::FRAME_STACK as u32,
            obs: OBS_GRAY84.to_owned(),
            global_step: 0,
            seed: 0,
            args: "{}".to_owned(),
        }
    }

    /// The same metadata for `policy`'s network: `arch` and `frame_stack` set to the
    /// policy's ([`Policy::arch`], [`Policy::frame_stack`]).
    pub fn with_policy(mut self, policy: Policy) -> Metadata {
        self.arch = policy.arch().to_owned();
        self.frame_stack = policy.frame_stack() as u32;
        self
    }

    /// The policy named by `arch`.
    ///
    /// # Errors
    /// [`Error::BadMetadata`] for `arch` when it names no policy.
    pub fn policy(&self) -> Result<Policy> {
        Policy::from_arch(&self.arch).ok_or_else(|| Error::BadMetadata {
            key: key::ARCH,
            value: self.arch.clone(),
            problem: format!("expected `{ARCH_NATURE_CNN}` or `{ARCH_NATURE_CNN_LSTM}` (PPO only)"),
        })
    }

    /// The network: `algo`'s heads on [`Metadata::policy`]'s trunk.
    ///
    /// # Errors
    /// As [`Metadata::policy`]; [`Error::BadMetadata`] for `arch` when the combination does
    /// not exist (`nature_cnn_lstm` with DQN).
    pub fn network(&self) -> Result<Arch> {
        Arch::new(self.algo, self.policy()?).map_err(|e| Error::BadMetadata {
            key: key::ARCH,
            value: self.arch.clone(),
            problem: format!("{e}"),
        })
    }

    /// Number of network outputs (`actions.len()`).
    pub fn n_actions(&self) -> usize {
        self.actions.len()
    }

    /// The actions as stored: ALE ids joined by commas, e.g. `"0,1,3,4"`.
    pub fn actions_string(&self) -> String {
        let ids: Vec<String> = self.actions.iter().map(u32::to_string).collect();
        ids.join(",")
    }

    /// The safetensors `__metadata__` map: every key of [`METADATA_KEYS`], including
    /// `format_version` = [`FORMAT_VERSION`], and [`RECURRENT_KEYS`] for a recurrent policy.
    pub fn to_map(&self) -> HashMap<String, String> {
        self.pairs()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// Every `(key, value)` of [`METADATA_KEYS`], in that order, then for a recurrent policy
    /// those of [`RECURRENT_KEYS`] ([`recurrent_pairs`]); the ONNX `metadata_props` carry the
    /// same pairs but `args`. An `arch` naming no policy adds no recurrent pairs
    /// ([`Metadata::validate`] refuses it).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (key::FORMAT_VERSION, FORMAT_VERSION.to_owned()),
            (key::ALGO, self.algo.as_str().to_owned()),
            (key::GAME, self.game.clone()),
            (key::ROM_MD5, self.rom_md5.clone()),
            (key::ACTIONS, self.actions_string()),
            (key::ARCH, self.arch.clone()),
            (key::FRAME_SKIP, self.frame_skip.to_string()),
            (key::FRAME_STACK, self.frame_stack.to_string()),
            (key::OBS, self.obs.clone()),
            (key::GLOBAL_STEP, self.global_step.to_string()),
            (key::SEED, self.seed.to_string()),
            (key::ARGS, self.args.clone()),
        ];
        if let Ok(policy) = self.policy() {
            pairs.extend(recurrent_pairs(policy));
        }
        pairs
    }

    /// Parses and validates a `__metadata__` map. Keys outside [`METADATA_KEYS`] and
    /// [`RECURRENT_KEYS`] are ignored (room for additions that older readers can skip).
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] naming the first absent key,
    /// [`Error::UnsupportedFormatVersion`] unless `format_version` is [`FORMAT_VERSION`],
    /// [`Error::BadMetadata`] naming the key for an unparsable or out-of-range value (see
    /// [`Metadata::validate`]); for the recurrent keys, those of [`check_recurrent_keys`].
    pub fn from_map(map: &HashMap<String, String>) -> Result<Metadata> {
        let get = |key: &'static str| {
            map.get(key)
                .map(String::as_str)
                .ok_or(Error::MissingMetadata { key })
        };
        for key in METADATA_KEYS {
            get(key)?;
        }
        let version = get(key::FORMAT_VERSION)?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion {
                found: version.to_owned(),
                supported: FORMAT_VERSION,
            });
        }
        let meta = Metadata {
            algo: get(key::ALGO)?
                .parse()
                .map_err(|e: cartridge_contract::UnknownAlgo| Error::BadMetadata {
                    key: key::ALGO,
                    value: e.0,
                    problem: "unknown algorithm; expected `ppo` or `dqn`".to_owned(),
                })?,
            game: get(key::GAME)?.to_owned(),
            rom_md5: get(key::ROM_MD5)?.to_owned(),
            actions: parse_actions(get(key::ACTIONS)?)?,
            arch: get(key::ARCH)?.to_owned(),
            frame_skip: parse_number(key::FRAME_SKIP, get(key::FRAME_SKIP)?)?,
            frame_stack: parse_number(key::FRAME_STACK, get(key::FRAME_STACK)?)?,
            obs: get(key::OBS)?.to_owned(),
            global_step: parse_number(key::GLOBAL_STEP, get(key::GLOBAL_STEP)?)?,
            seed: parse_number(key::SEED, get(key::SEED)?)?,
            args: get(key::ARGS)?.to_owned(),
        };
        meta.validate()?;
        check_recurrent_keys(meta.policy()?, |k| map.get(k).map(String::as_str))?;
        Ok(meta)
    }

    /// Checks every field against what this crate can export.
    ///
    /// # Errors
    /// [`Error::BadMetadata`] naming the key: `game` not a ROM stem, `rom_md5` not 32 hex
    /// digits, `actions` empty / repeated / above 17, `arch` neither `nature_cnn` nor
    /// `nature_cnn_lstm` or `nature_cnn_lstm` with DQN, `frame_skip` 0, `frame_stack` not the
    /// policy's (4 for `nature_cnn`, 1 for `nature_cnn_lstm`), `obs` not `gray84x84`, `args`
    /// not JSON.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: &str, problem: &str| {
            Err(Error::BadMetadata {
                key,
                value: value.to_owned(),
                problem: problem.to_owned(),
            })
        };
        let stem_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if self.game.is_empty() || !self.game.chars().all(stem_char) {
            return bad(
                key::GAME,
                &self.game,
                "expected the ROM file stem, e.g. `breakout` (a-z, 0-9, _)",
            );
        }
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if self.rom_md5.len() != 32 || !self.rom_md5.chars().all(hex) {
            return bad(
                key::ROM_MD5,
                &self.rom_md5,
                "expected the ROM's MD5 as 32 lower-case hex digits",
            );
        }
        check_actions(&self.actions)?;
        let policy = self.network()?.policy();
        if self.frame_skip == 0 {
            return bad(key::FRAME_SKIP, "0", "expected at least 1");
        }
        if self.frame_stack as usize != policy.frame_stack() {
            let value = self.frame_stack.to_string();
            let problem = match policy {
                Policy::Cnn => "the Nature CNN takes exactly 4 stacked frames".to_owned(),
                Policy::Lstm => format!(
                    "the `{ARCH_NATURE_CNN_LSTM}` network takes exactly {} frame (its LSTM \
                     carries the history)",
                    policy.frame_stack()
                ),
            };
            return bad(key::FRAME_STACK, &value, &problem);
        }
        if self.obs != OBS_GRAY84 {
            return bad(key::OBS, &self.obs, "only `gray84x84` is supported");
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&self.args) {
            return bad(key::ARGS, &self.args, &format!("not valid JSON ({e})"));
        }
        Ok(())
    }
}

/// The [`RECURRENT_KEYS`] pairs of `policy`, in that order; none for a feed-forward policy.
/// For the CNN-LSTM: `recurrent` = `lstm`, `state_inputs` = `h,c`, `state_outputs` =
/// `h_out,c_out`, `hidden_size` = `128`.
pub fn recurrent_pairs(policy: Policy) -> Vec<(&'static str, String)> {
    let Some(hidden) = policy.hidden_size() else {
        return Vec::new();
    };
    vec![
        (key::RECURRENT, RECURRENT_LSTM.to_owned()),
        (key::STATE_INPUTS, tensor::STATE_INPUTS.join(",")),
        (key::STATE_OUTPUTS, tensor::STATE_OUTPUTS.join(",")),
        (key::HIDDEN_SIZE, hidden.to_string()),
    ]
}

/// Checks the [`RECURRENT_KEYS`] of a metadata map (checkpoint `__metadata__`, or ONNX
/// `metadata_props` with the prefix stripped) read through `get` against `policy`: a
/// recurrent policy needs each with exactly the value of [`recurrent_pairs`]; a feed-forward
/// one must have none (a model cannot be both).
///
/// # Errors
/// [`Error::MissingRecurrentMetadata`] naming the first absent key; [`Error::BadMetadata`]
/// naming a key whose value differs (a `hidden_size` other than 128, state names other than
/// `h,c` / `h_out,c_out`), or a recurrent key on a `nature_cnn` model.
pub fn check_recurrent_keys<'a>(
    policy: Policy,
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<()> {
    let want = recurrent_pairs(policy);
    if want.is_empty() {
        if let Some(key) = RECURRENT_KEYS.into_iter().find(|k| get(k).is_some()) {
            return Err(Error::BadMetadata {
                key,
                value: get(key).unwrap_or_default().to_owned(),
                problem: format!(
                    "a `{}` model has no recurrent state; drop the key, or set `arch` to \
                     `{ARCH_NATURE_CNN_LSTM}` and `frame_stack` to 1 for a CNN-LSTM",
                    policy.arch()
                ),
            });
        }
        return Ok(());
    }
    for (key, value) in want {
        let found = get(key).ok_or(Error::MissingRecurrentMetadata {
            key,
            arch: policy.arch(),
        })?;
        if found != value {
            let problem = if key == key::HIDDEN_SIZE {
                format!(
                    "the `{}` network's LSTM has {value} hidden units, so its state tensors \
                     are [1, batch, {value}]",
                    policy.arch()
                )
            } else {
                format!("expected `{value}` for a `{}` model", policy.arch())
            };
            return Err(Error::BadMetadata {
                key,
                value: found.to_owned(),
                problem,
            });
        }
    }
    Ok(())
}

/// Parses an action list such as `"0,1,3,4"` (ALE ids, comma separated, spaces allowed).
///
/// # Errors
/// [`Error::BadMetadata`] for the `actions` key: empty list, non-number, id above 17, or an
/// id listed twice.
pub fn parse_actions(s: &str) -> Result<Vec<u32>> {
    let actions = s
        .split(',')
        .map(|part| {
            part.trim().parse::<u32>().map_err(|_| Error::BadMetadata {
                key: key::ACTIONS,
                value: s.to_owned(),
                problem: format!(
                    "{:?} is not an ALE action id; expected comma-separated ids 0..=17, \
                     e.g. `0,1,3,4`",
                    part.trim()
                ),
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    check_actions(&actions)?;
    Ok(actions)
}

fn check_actions(actions: &[u32]) -> Result<()> {
    let bad = |problem: String| Error::BadMetadata {
        key: key::ACTIONS,
        value: actions
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        problem,
    };
    if actions.is_empty() {
        return Err(bad("the action set is empty".to_owned()));
    }
    if let Some(a) = actions.iter().find(|&&a| a > MAX_ALE_ACTION) {
        return Err(bad(format!(
            "{a} is not an ALE action id (0..={MAX_ALE_ACTION})"
        )));
    }
    let mut seen = BTreeSet::new();
    if let Some(a) = actions.iter().find(|&&a| !seen.insert(a)) {
        return Err(bad(format!("action {a} is listed twice")));
    }
    Ok(())
}

fn parse_number<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T> {
    value.parse().map_err(|_| Error::BadMetadata {
        key,
        value: value.to_owned(),
        problem: "expected a non-negative integer".to_owned(),
    })
}

/// A network's parameters with their [`Metadata`].
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// What the parameters are.
    pub meta: Metadata,
    /// The parameters, named as in [`crate::arch::param_specs`].
    pub tensors: Tensors,
}

impl Checkpoint {
    /// A freshly initialised network for `meta` ([`random_init`] with `meta.seed`).
    ///
    /// # Errors
    /// As [`Metadata::validate`].
    pub fn random(meta: Metadata) -> Result<Checkpoint> {
        meta.validate()?;
        let tensors = random_init(meta.network()?, meta.n_actions(), meta.seed);
        Ok(Checkpoint { meta, tensors })
    }

    /// Checks the metadata ([`Metadata::validate`]) and that the tensors are exactly
    /// `param_specs(meta.network(), meta.actions.len())`: same names, same shapes, data
    /// lengths matching shapes.
    ///
    /// # Errors
    /// The first problem found, in spec order: [`Error::MissingTensor`],
    /// [`Error::ShapeMismatch`], [`Error::DataLength`]; then [`Error::UnexpectedTensor`] for
    /// an extra tensor. Each names the tensor and gives expected and found shapes.
    pub fn validate(&self) -> Result<()> {
        self.meta.validate()?;
        let (arch, n_actions) = (self.meta.network()?, self.meta.n_actions());
        let specs = param_specs(arch, n_actions);
        for spec in &specs {
            let Some(tensor) = self.tensors.get(spec.name) else {
                return Err(Error::MissingTensor {
                    name: spec.name.to_owned(),
                    arch,
                    n_actions,
                    expected: spec.shape.clone(),
                });
            };
            if tensor.shape != spec.shape {
                return Err(Error::ShapeMismatch {
                    name: spec.name.to_owned(),
                    found: tensor.shape.clone(),
                    expected: spec.shape.clone(),
                    arch,
                    n_actions,
                });
            }
            tensor.check_len(spec.name)?;
        }
        if let Some((name, tensor)) = self
            .tensors
            .iter()
            .find(|(name, _)| !specs.iter().any(|s| s.name == name.as_str()))
        {
            return Err(Error::UnexpectedTensor {
                name: name.clone(),
                shape: tensor.shape.clone(),
                arch,
            });
        }
        Ok(())
    }

    /// Serialises to safetensors bytes after [`Checkpoint::validate`].
    ///
    /// # Errors
    /// Validation errors; [`Error::InvalidInput`] if safetensors refuses the data.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let bytes: Vec<(&str, Vec<u8>, &[usize])> = self
            .tensors
            .iter()
            .map(|(name, t)| (name.as_str(), t.to_le_bytes(), t.shape.as_slice()))
            .collect();
        let mut views = Vec::with_capacity(bytes.len());
        for (name, data, shape) in &bytes {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.to_vec(), data)
                .map_err(|e| Error::InvalidInput(format!("tensor `{name}`: {e}")))?;
            views.push((*name, view));
        }
        safetensors::serialize(views, Some(self.meta.to_map()))
            .map_err(|e| Error::InvalidInput(format!("cannot encode safetensors: {e}")))
    }

    /// Parses safetensors bytes and validates them ([`Metadata::from_map`],
    /// [`Checkpoint::validate`]).
    ///
    /// # Errors
    /// [`Error::NotSafetensors`] for bytes that are not safetensors (including truncated
    /// files), [`Error::MissingMetadata`] when there is no `__metadata__` at all,
    /// [`Error::UnsupportedDtype`] for a non-F32 tensor, and the errors of
    /// [`Metadata::from_map`] and [`Checkpoint::validate`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        let not_safetensors = |e: safetensors::SafeTensorError| Error::NotSafetensors {
            detail: e.to_string(),
        };
        // `read_metadata` checks the header and that the offsets cover the buffer exactly,
        // so `deserialize` and the tensor views below never index out of bounds.
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let st = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let map = header.metadata().as_ref().ok_or(Error::MissingMetadata {
            key: key::FORMAT_VERSION,
        })?;
        let meta = Metadata::from_map(map)?;
        let mut tensors = Tensors::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(Error::UnsupportedDtype {
                    name,
                    dtype: view.dtype().to_string(),
                });
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let tensor = Tensor {
                shape: view.shape().to_vec(),
                data,
            };
            tensor.check_len(&name)?;
            tensors.insert(name, tensor);
        }
        let ckpt = Checkpoint { meta, tensors };
        ckpt.validate()?;
        Ok(ckpt)
    }

    /// Reads and validates the checkpoint at `path` (see [`Checkpoint::from_bytes`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; otherwise [`Error::InFile`] naming `path`
    /// around the errors of [`Checkpoint::from_bytes`].
    pub fn read(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|err| Error::Io {
            action: "read checkpoint",
            path: path.to_path_buf(),
            err,
        })?;
        Checkpoint::from_bytes(&bytes).map_err(|e| e.in_file(path))
    }

    /// Validates and writes the checkpoint to `path` atomically ([`write_atomic`]): on error
    /// `path` is untouched.
    ///
    /// # Errors
    /// Those of [`Checkpoint::to_bytes`] and [`write_atomic`].
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "f34f08e5eb96e500e851a80be3277a56";

    fn sample(algo: Algo) -> Checkpoint {
        let mut meta = Metadata::new(algo, "breakout", MD5, vec![0, 1, 3, 4]);
        meta.seed = 5;
        meta.global_step = 123_456;
        meta.args = r#"{"lr":0.00025}"#.to_owned();
        meta.validate().expect("valid metadata");
        let tensors = crate::arch::test_tensors(algo, 4, 5);
        Checkpoint { meta, tensors }
    }

    fn sample_lstm() -> Checkpoint {
        let mut meta =
            Metadata::new(Algo::Ppo, "breakout", MD5, vec![0, 1, 3, 4]).with_policy(Policy::Lstm);
        meta.seed = 5;
        meta.validate().expect("valid metadata");
        let tensors = crate::arch::test_tensors(Arch::PPO_LSTM, 4, 5);
        Checkpoint { meta, tensors }
    }

    #[test]
    fn lstm_round_trip_and_recurrent_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ckpt = sample_lstm();
        let path = dir.path().join("lstm.safetensors");
        ckpt.write(&path).expect("write");
        let back = Checkpoint::read(&path).expect("read");
        assert_eq!(back, ckpt);
        assert_eq!(back.meta.policy().expect("policy"), Policy::Lstm);
        assert_eq!(back.meta.network().expect("network"), Arch::PPO_LSTM);
        let map = ckpt.meta.to_map();
        assert_eq!(map["arch"], "nature_cnn_lstm");
        assert_eq!(map["frame_stack"], "1");
        assert_eq!(map["recurrent"], "lstm");
        assert_eq!(map["state_inputs"], "h,c");
        assert_eq!(map["state_outputs"], "h_out,c_out");
        assert_eq!(map["hidden_size"], "128");
        assert_eq!(map.len(), METADATA_KEYS.len() + RECURRENT_KEYS.len());
        // The CNN writes none of them: its files are as before.
        let cnn = sample(Algo::Ppo).meta.to_map();
        assert!(RECURRENT_KEYS.iter().all(|k| !cnn.contains_key(*k)));
        assert_eq!(cnn.len(), METADATA_KEYS.len());
    }

    #[test]
    fn recurrent_metadata_errors_are_named() {
        for key in RECURRENT_KEYS {
            let mut map = sample_lstm().meta.to_map();
            map.remove(key);
            let err = Metadata::from_map(&map).expect_err(key);
            assert!(
                matches!(err, Error::MissingRecurrentMetadata { .. }),
                "{err}"
            );
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
        let cases = [
            ("recurrent", "gru"),
            ("state_inputs", "c,h"),
            ("state_outputs", "h_out"),
            ("hidden_size", "64"),
            ("hidden_size", "x"),
            // Mixed: an LSTM on 4 stacked frames, or labelled DQN.
            ("frame_stack", "4"),
            ("algo", "dqn"),
        ];
        for (key, value) in cases {
            let mut map = sample_lstm().meta.to_map();
            map.insert(key.to_owned(), value.to_owned());
            let err = Metadata::from_map(&map).expect_err(key);
            assert!(matches!(err, Error::BadMetadata { .. }), "{key}: {err}");
            let named = if key == "algo" { "arch" } else { key };
            assert!(
                err.to_string().contains(&format!("`{named}`")),
                "{key}: {err}"
            );
        }
        // Mixed the other way: a CNN with a recurrent key, or on one frame.
        for (key, value) in [
            ("recurrent", "lstm"),
            ("hidden_size", "128"),
            ("frame_stack", "1"),
        ] {
            let mut map = sample(Algo::Ppo).meta.to_map();
            map.insert(key.to_owned(), value.to_owned());
            let err = Metadata::from_map(&map).expect_err(key);
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn lstm_tensors_must_match_the_lstm_specs() {
        let ckpt = sample_lstm();
        let map = ckpt.meta.to_map();
        let mut t = ckpt.tensors.clone();
        t.insert("lstm.weight_hh_l0".to_owned(), Tensor::zeros(vec![512, 64]));
        let err = Checkpoint::from_bytes(&encode_raw(&t, map.clone())).expect_err("state");
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("[512, 128]") && msg.contains("nature_cnn_lstm"),
            "{msg}"
        );
        // CNN weights labelled CNN-LSTM: the first conv takes 1 plane, not 4.
        let cnn = sample(Algo::Ppo);
        let err = Checkpoint::from_bytes(&encode_raw(&cnn.tensors, map)).expect_err("cnn");
        assert!(err.to_string().contains("network.0.weight"), "{err}");
        // And CNN-LSTM weights labelled CNN.
        let err = Checkpoint::from_bytes(&encode_raw(&ckpt.tensors, cnn.meta.to_map()))
            .expect_err("lstm as cnn");
        assert!(err.to_string().contains("network.0.weight"), "{err}");
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        for algo in [Algo::Ppo, Algo::Dqn] {
            let ckpt = sample(algo);
            let path = dir.path().join(format!("{algo}.safetensors"));
            ckpt.write(&path).expect("write");
            let back = Checkpoint::read(&path).expect("read");
            assert_eq!(back.meta, ckpt.meta);
            assert_eq!(back.tensors, ckpt.tensors);
        }
    }

    #[test]
    fn metadata_map_round_trip_and_keys() {
        let meta = sample(Algo::Dqn).meta;
        let map = meta.to_map();
        let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = METADATA_KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(map["actions"], "0,1,3,4");
        assert_eq!(map["format_version"], "1");
        assert_eq!(Metadata::from_map(&map).expect("parse"), meta);
    }

    #[test]
    fn missing_metadata_key_is_named() {
        for key in METADATA_KEYS {
            let mut map = sample(Algo::Ppo).meta.to_map();
            map.remove(key);
            let err = Metadata::from_map(&map).expect_err("must fail");
            assert!(matches!(err, Error::MissingMetadata { .. }), "{err}");
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn bad_metadata_values_are_named() {
        let cases = [
            ("algo", "a2c"),
            ("actions", ""),
            ("actions", "0,1,x"),
            ("actions", "0,18"),
            ("actions", "0,1,1"),
            ("frame_skip", "-4"),
            ("frame_stack", "3"),
            ("global_step", "1e6"),
            ("seed", "abc"),
            ("rom_md5", "xyz"),
            ("game", "Breakout"),
            ("arch", "impala"),
            ("obs", "rgb"),
            ("args", "{not json"),
        ];
        for (key, value) in cases {
            let mut map = sample(Algo::Ppo).meta.to_map();
            map.insert(key.to_owned(), value.to_owned());
            let err = Metadata::from_map(&map).expect_err(key);
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{key}: {err}"
            );
        }
        let mut map = sample(Algo::Ppo).meta.to_map();
        map.insert("format_version".to_owned(), "2".to_owned());
        let err = Metadata::from_map(&map).expect_err("version");
        assert!(
            matches!(err, Error::UnsupportedFormatVersion { .. }),
            "{err}"
        );
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = sample(Algo::Ppo).to_bytes().expect("encode");
        let mut garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"short".to_vec(),
            garbage.clone(),
            good[..good.len() / 2].to_vec(),
            good[..8].to_vec(),
            good[..good.len() - 1].to_vec(),
        ];
        // A header length pointing far past the end.
        garbage[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        cases.push(garbage);
        for (i, bytes) in cases.iter().enumerate() {
            let path = dir.path().join(format!("bad{i}.safetensors"));
            std::fs::write(&path, bytes).expect("write");
            let err = Checkpoint::read(&path).expect_err("must fail");
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("safetensors"), "{msg}");
        }
        let err = Checkpoint::read(dir.path().join("absent.safetensors")).expect_err("absent");
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    /// Encodes arbitrary tensors and metadata without validation.
    fn encode_raw(tensors: &Tensors, meta: HashMap<String, String>) -> Vec<u8> {
        let owned: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.to_le_bytes(), t.shape.clone()))
            .collect();
        let views: Vec<_> = owned
            .iter()
            .map(|(n, d, s)| {
                let v = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), d);
                (n.as_str(), v.expect("view"))
            })
            .collect();
        safetensors::serialize(views, Some(meta)).expect("serialize")
    }

    #[test]
    fn wrong_shapes_and_names_are_reported() {
        let ckpt = sample(Algo::Ppo);
        let map = ckpt.meta.to_map();

        let mut t = ckpt.tensors.clone();
        t.insert("actor.weight".to_owned(), Tensor::zeros(vec![6, 512]));
        let err = Checkpoint::from_bytes(&encode_raw(&t, map.clone())).expect_err("shape");
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("actor.weight") && msg.contains("[6, 512]") && msg.contains("[4, 512]"),
            "{msg}"
        );

        let mut t = ckpt.tensors.clone();
        t.remove("critic.bias");
        let err = Checkpoint::from_bytes(&encode_raw(&t, map.clone())).expect_err("missing");
        assert!(err.to_string().contains("critic.bias"), "{err}");

        let mut t = ckpt.tensors.clone();
        t.insert("extra".to_owned(), Tensor::zeros(vec![2]));
        let err = Checkpoint::from_bytes(&encode_raw(&t, map.clone())).expect_err("extra");
        assert!(matches!(err, Error::UnexpectedTensor { .. }), "{err}");

        // A DQN checkpoint labelled PPO.
        let dqn = sample(Algo::Dqn);
        let err = Checkpoint::from_bytes(&encode_raw(&dqn.tensors, map)).expect_err("algo");
        assert!(matches!(err, Error::MissingTensor { .. }), "{err}");

        // Writing refuses too, and leaves nothing behind.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bad = ckpt.clone();
        bad.tensors
            .insert("network.0.bias".to_owned(), Tensor::zeros(vec![31]));
        let path = dir.path().join("bad.safetensors");
        assert!(bad.write(&path).is_err());
        assert!(!path.exists());
        // Data length disagreeing with shape.
        let mut bad = ckpt;
        bad.tensors.insert(
            "network.0.bias".to_owned(),
            Tensor {
                shape: vec![32],
                data: vec![0.0; 3],
            },
        );
        assert!(matches!(bad.validate(), Err(Error::DataLength { .. })));
    }

    #[test]
    fn non_f32_and_metadata_free_files_are_refused() {
        let data = [0u8; 8];
        let view = safetensors::tensor::TensorView::new(Dtype::F64, vec![1], &data).expect("view");
        let mut meta = sample(Algo::Ppo).meta.to_map();
        let bytes = safetensors::serialize([("network.0.bias", view.clone())], Some(meta.clone()))
            .expect("serialize");
        let err = Checkpoint::from_bytes(&bytes).expect_err("f64");
        assert!(matches!(err, Error::UnsupportedDtype { .. }), "{err}");

        let bytes = safetensors::serialize([("x", view.clone())], None).expect("serialize");
        let err = Checkpoint::from_bytes(&bytes).expect_err("no metadata");
        assert!(matches!(err, Error::MissingMetadata { .. }), "{err}");

        meta.remove("rom_md5");
        let bytes = safetensors::serialize([("x", view)], Some(meta)).expect("serialize");
        let err = Checkpoint::from_bytes(&bytes).expect_err("no md5");
        assert!(err.to_string().contains("`rom_md5`"), "{err}");
    }

    #[test]
    fn invalid_checkpoint_is_refused_before_touching_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ckpt.safetensors");
        let ckpt = sample(Algo::Ppo);
        ckpt.write(&path).expect("write");
        let before = std::fs::read(&path).expect("read");
        let mut bad = ckpt;
        bad.meta.actions.clear();
        assert!(bad.write(&path).is_err());
        assert_eq!(std::fs::read(&path).expect("read"), before);
        assert!(ckpt_missing_dir_fails());
    }

    #[cfg(unix)]
    #[test]
    fn a_write_that_fails_midway_leaves_the_old_checkpoint_intact() {
        // The new checkpoint (6.7 MB of tensors) runs into a 4 KiB file-size limit while it
        // is written: an in-place write would leave a truncated checkpoint.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ckpt.safetensors");
        sample(Algo::Dqn).write(&path).expect("write");
        let before = std::fs::read(&path).expect("read");
        let out = crate::fsio::test_support::run_with_file_limit(
            "checkpoint::tests::child_writes_a_checkpoint_past_the_file_limit",
            dir.path(),
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            before,
            "old checkpoint"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["ckpt.safetensors"], "no temporary file left");
    }

    #[cfg(unix)]
    #[test]
    #[ignore = "run by a_write_that_fails_midway_leaves_the_old_checkpoint_intact"]
    fn child_writes_a_checkpoint_past_the_file_limit() {
        let dir = crate::fsio::test_support::limited_child_dir();
        let ckpt = sample(Algo::Ppo);
        assert!(ckpt.to_bytes().expect("bytes").len() as u64 > crate::fsio::test_support::LIMIT);
        let err = ckpt
            .write(dir.join("ckpt.safetensors"))
            .expect_err("the write must hit the file-size limit");
        assert!(err.to_string().contains("write"), "{err}");
    }

    #[test]
    fn random_checkpoint_validates_metadata_first() {
        let meta = Metadata::new(Algo::Dqn, "pong", MD5, vec![]);
        let err = Checkpoint::random(meta).expect_err("empty actions");
        assert!(err.to_string().contains("`actions`"), "{err}");
    }

    fn ckpt_missing_dir_fails() -> bool {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("ckpt.safetensors");
        sample(Algo::Dqn).write(&path).is_err() && !path.exists()
    }
}
