//! `export`: write a Cartridge ONNX model from a checkpoint, or from a random init.
//!
//! ```text
//! export --onnx CKPT.safetensors -o MODEL.onnx [--meta KEY=VALUE ...]
//! export --init random --algo ppo|dqn --game breakout --actions 0,1,3,4 --rom-md5 MD5 \
//!        -o MODEL.onnx [--policy cnn|lstm] [--seed 1] [--checkpoint-out CKPT.safetensors] \
//!        [--meta KEY=VALUE ...]
//! export --from sb3 MODEL.zip --rom GAME -o MODEL.onnx [--meta KEY=VALUE ...]
//! export --from cleanrl MODEL.cleanrl_model --algo ppo|dqn --rom GAME -o MODEL.onnx
//! ```
//!
//! Prints one line describing what was written; on failure prints `error: ...` to stderr
//! and exits with status 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use cartridge_contract::roms::KnownRom;
use cartridge_export::checkpoint::parse_actions;
use cartridge_export::{import, to_onnx, write_atomic, Algo, Arch, Checkpoint, Metadata, Policy};
use clap::{ArgGroup, Parser, ValueEnum};

/// Command line as parsed, before any checks across arguments.
#[derive(Debug, Parser)]
#[command(
    name = "export",
    version,
    about = "Write a self-describing Cartridge ONNX model from a checkpoint or a random init",
    group(ArgGroup::new("source").required(true).args(["onnx", "init", "from"]))
)]
struct Args {
    /// Convert this checkpoint (.safetensors written by `train`) to ONNX.
    #[arg(long, value_name = "CKPT")]
    onnx: Option<PathBuf>,

    /// Write a freshly initialised network instead of converting a checkpoint.
    #[arg(long, value_enum, value_name = "KIND")]
    init: Option<InitKind>,

    /// Convert a model trained elsewhere: a Stable-Baselines3 / rl-zoo archive (`.zip`:
    /// PPO, A2C or DQN with CnnPolicy) or a CleanRL state dict (`.cleanrl_model`, with
    /// --algo). Needs MODEL and --rom.
    #[arg(long, value_enum, value_name = "FORMAT", requires_all = ["model", "rom"])]
    from: Option<FromFormat>,

    /// With --from: the file to convert.
    #[arg(value_name = "MODEL", requires = "from")]
    model: Option<PathBuf>,

    /// With --from: the game the model was trained on, as `play --rom` takes it (`breakout`,
    /// `BreakoutNoFrameskip-v4`) or a ROM file; its MD5 and minimal action set go into the
    /// model.
    #[arg(long, value_name = "GAME", requires = "from")]
    rom: Option<String>,

    /// Where to write the ONNX model.
    #[arg(short = 'o', long = "output", value_name = "MODEL.onnx")]
    output: PathBuf,

    /// Extra ONNX metadata (repeatable), e.g. `cartridge.eval_mean_return=401.2`.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,

    /// With --init, and with --from cleanrl (whose state dicts do not name it): the learner,
    /// which decides the network heads.
    #[arg(long, value_enum, conflicts_with = "onnx")]
    algo: Option<AlgoArg>,

    /// With --init: the network between observation and heads: the Nature CNN on 4 stacked
    /// frames, or the CNN-LSTM on one frame (PPO only; inputs h, c and outputs h_out, c_out
    /// carry its state).
    #[arg(long, value_enum, default_value_t = PolicyArg::Cnn, conflicts_with = "onnx")]
    policy: PolicyArg,

    /// With --init: the game (ROM file stem, e.g. `breakout`).
    #[arg(long, conflicts_with = "onnx")]
    game: Option<String>,

    /// With --init: the game's minimal action set as ALE ids, e.g. `0,1,3,4`.
    #[arg(long, value_name = "IDS", conflicts_with = "onnx")]
    actions: Option<String>,

    /// With --init: MD5 of the game's ROM (32 hex digits).
    #[arg(long, value_name = "MD5", conflicts_with = "onnx")]
    rom_md5: Option<String>,

    /// With --init: seed of the random weights.
    #[arg(long, default_value_t = 1, conflicts_with = "onnx")]
    seed: u64,

    /// With --init: also write the weights as a checkpoint here.
    #[arg(long, value_name = "CKPT", conflicts_with = "onnx")]
    checkpoint_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InitKind {
    /// Orthogonal init as CleanRL's PPO (biases zero).
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FromFormat {
    /// A Stable-Baselines3 / rl-zoo model archive (`model.save`).
    Sb3,
    /// A CleanRL state dict (`torch.save(agent.state_dict())`).
    Cleanrl,
}

/// A foreign format with what converting it needs.
#[derive(Debug, Clone, Copy)]
enum Foreign {
    /// An SB3 archive names its own learner.
    Sb3,
    /// A CleanRL state dict, trained by this learner.
    Cleanrl(Algo),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AlgoArg {
    Ppo,
    Dqn,
}

impl From<AlgoArg> for Algo {
    fn from(a: AlgoArg) -> Algo {
        match a {
            AlgoArg::Ppo => Algo::Ppo,
            AlgoArg::Dqn => Algo::Dqn,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyArg {
    Cnn,
    Lstm,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::Cnn => Policy::Cnn,
            PolicyArg::Lstm => Policy::Lstm,
        }
    }
}

/// What to do, after every cross-argument check.
#[derive(Debug)]
struct Plan {
    source: Source,
    output: PathBuf,
    extra_meta: Vec<(String, String)>,
}

#[derive(Debug)]
enum Source {
    /// Convert an existing checkpoint.
    Checkpoint(PathBuf),
    /// Random weights for this metadata, optionally saved as a checkpoint too.
    Random {
        meta: Metadata,
        checkpoint_out: Option<PathBuf>,
    },
    /// A model trained elsewhere, for this game.
    Foreign {
        format: Foreign,
        model: PathBuf,
        rom: &'static KnownRom,
    },
}

impl Plan {
    fn from_args(args: Args) -> anyhow::Result<Plan> {
        let extra_meta = args
            .meta
            .iter()
            .map(|kv| parse_meta(kv))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let (Some(format), Some(model), Some(rom)) = (args.from, &args.model, &args.rom) {
            for (flag, given) in [
                ("--game", args.game.is_some()),
                ("--actions", args.actions.is_some()),
                ("--rom-md5", args.rom_md5.is_some()),
                ("--checkpoint-out", args.checkpoint_out.is_some()),
            ] {
                if given {
                    bail!("{flag} is for --init; with --from, --rom names the game");
                }
            }
            let format = match (format, args.algo) {
                (FromFormat::Cleanrl, None) => bail!(
                    "--from cleanrl requires --algo ppo|dqn: a CleanRL state dict does not name \
                     its learner (ppo_atari*.py: ppo, dqn_atari.py: dqn)"
                ),
                (FromFormat::Sb3, Some(_)) => {
                    bail!("--algo is not needed with --from sb3: the archive names its learner")
                }
                (FromFormat::Sb3, None) => Foreign::Sb3,
                (FromFormat::Cleanrl, Some(algo)) => Foreign::Cleanrl(algo.into()),
            };
            if same_file(model, &args.output) {
                bail!(
                    "-o {} would overwrite the model being converted; choose another output path",
                    args.output.display()
                );
            }
            return Ok(Plan {
                source: Source::Foreign {
                    format,
                    model: model.clone(),
                    rom: import::resolve_game(rom)?,
                },
                output: args.output,
                extra_meta,
            });
        }
        let source = match (args.onnx, args.init) {
            (Some(ckpt), None) => {
                if same_file(&ckpt, &args.output) {
                    bail!(
                        "-o {} would overwrite the checkpoint being converted; choose another \
                         output path",
                        args.output.display()
                    );
                }
                Source::Checkpoint(ckpt)
            }
            (None, Some(InitKind::Random)) => {
                let missing: Vec<&str> = [
                    ("--algo", args.algo.is_none()),
                    ("--game", args.game.is_none()),
                    ("--actions", args.actions.is_none()),
                    ("--rom-md5", args.rom_md5.is_none()),
                ]
                .into_iter()
                .filter_map(|(flag, absent)| absent.then_some(flag))
                .collect();
                let (Some(algo), Some(game), Some(actions), Some(rom_md5)) =
                    (args.algo, args.game, args.actions, args.rom_md5)
                else {
                    bail!(
                        "--init random requires {}: the learner (ppo|dqn), the game's ROM name, \
                         its minimal action set as ALE ids (e.g. 0,1,3,4) and its ROM's MD5",
                        missing.join(", ")
                    );
                };
                // Refuses `--algo dqn --policy lstm` in the flags' words.
                Arch::new(algo.into(), args.policy.into()).context("--policy")?;
                let mut meta = Metadata::new(
                    algo.into(),
                    game,
                    rom_md5.to_ascii_lowercase(),
                    parse_actions(&actions).context("--actions")?,
                )
                .with_policy(args.policy.into());
                meta.seed = args.seed;
                meta.validate()?;
                if let Some(ckpt) = &args.checkpoint_out {
                    if same_file(ckpt, &args.output) {
                        bail!("--checkpoint-out and -o name the same file; give two paths");
                    }
                }
                Source::Random {
                    meta,
                    checkpoint_out: args.checkpoint_out,
                }
            }
            // clap's required group makes exactly one of the three present.
            _ => bail!("give exactly one of --onnx CKPT, --init random and --from FORMAT MODEL"),
        };
        Ok(Plan {
            source,
            output: args.output,
            extra_meta,
        })
    }

    /// Writes the files; returns the line to print.
    fn execute(mut self) -> anyhow::Result<String> {
        let (ckpt, ckpt_note) = match self.source {
            Source::Checkpoint(path) => (Checkpoint::read(&path)?, String::new()),
            Source::Foreign { format, model, rom } => {
                let converted = match format {
                    Foreign::Sb3 => import::from_sb3(&model, rom)?,
                    Foreign::Cleanrl(algo) => import::from_cleanrl(&model, algo, rom)?,
                };
                // The user's --meta come after the source's, so a repeated key is refused.
                let mut meta = converted.onnx_meta;
                meta.append(&mut self.extra_meta);
                self.extra_meta = meta;
                (converted.ckpt, format!(" from {}", converted.described))
            }
            Source::Random {
                meta,
                checkpoint_out,
            } => {
                let ckpt = Checkpoint::random(meta)?;
                let note = match checkpoint_out {
                    Some(path) => {
                        let bytes = ckpt.to_bytes()?;
                        write_atomic(&path, &bytes)?;
                        format!(" and checkpoint {} ({} bytes)", path.display(), bytes.len())
                    }
                    None => String::new(),
                };
                (ckpt, note)
            }
        };
        let bytes = to_onnx(&ckpt, &self.extra_meta)?;
        write_atomic(&self.output, &bytes)?;
        let policy = match ckpt.meta.policy()? {
            Policy::Cnn => String::new(),
            p => format!(" {p}"),
        };
        Ok(format!(
            "wrote {} ({}{policy}, {}, {} actions, {} bytes){}",
            self.output.display(),
            ckpt.meta.algo,
            ckpt.meta.game,
            ckpt.meta.n_actions(),
            bytes.len(),
            ckpt_note
        ))
    }
}

fn parse_meta(kv: &str) -> anyhow::Result<(String, String)> {
    match kv.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => bail!("--meta {kv:?}: expected KEY=VALUE with a non-empty KEY"),
    }
}

/// Whether `a` and `b` name the same file (by path, or by identity when both exist).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn run() -> anyhow::Result<()> {
    let plan = Plan::from_args(Args::parse())?;
    println!("{}", plan.execute()?);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
