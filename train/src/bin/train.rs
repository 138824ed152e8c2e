//! `train ppo|dqn --rom GAME --out runs/NAME`: PPO or DQN on libtorch, checkpoints, logs, ONNX
//! export and evaluation. See `train ppo --help` and `train dqn --help` for every flag (named
//! as CleanRL's `ppo_atari.py` and `dqn_atari.py`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cartridge_train::config::{DqnArgs, PpoArgs};
use cartridge_train::logger::{plot_curve, read_metrics};
use cartridge_train::run::{train_ppo, Outcome};
use cartridge_train::run_dqn::train_dqn;

/// Train Atari agents from pixels with libtorch.
#[derive(Debug, Parser)]
#[command(
    name = "train",
    version,
    about = "Train Atari agents from pixels (PPO and DQN on libtorch)"
)]
struct Cli {
    #[command(subcommand)]
    algo: Algo,
}

#[derive(Debug, Subcommand)]
enum Algo {
    /// Proximal Policy Optimization (Schulman et al. 2017), CleanRL ppo_atari.py semantics.
    Ppo(Box<PpoArgs>),
    /// Deep Q-Network (Mnih et al. 2015; --double: van Hasselt et al. 2016), CleanRL
    /// dqn_atari.py semantics, with a frame-deduplicating replay memory.
    Dqn(Box<DqnArgs>),
    /// Redraw RUN/curve.png from RUN/metrics.csv.
    Plot {
        /// The run folder.
        run: std::path::PathBuf,
        /// Plot title.
        #[arg(long, default_value = "training curve")]
        title: String,
    },
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

fn run() -> anyhow::Result<()> {
    let outcome = match Cli::parse().algo {
        Algo::Ppo(args) => train_ppo(&args)?,
        Algo::Dqn(args) => train_dqn(&args)?,
        Algo::Plot { run, title } => {
            let rows = read_metrics(&run.join("metrics.csv"))?;
            plot_curve(&run.join("curve.png"), &title, &rows)?;
            println!("wrote {}", run.join("curve.png").display());
            return Ok(());
        }
    };
    match outcome {
        Outcome::Bench(b) => println!("{}", serde_json::to_string(&b)?),
        Outcome::DqnBench(b) => println!("{}", serde_json::to_string(&b)?),
        Outcome::Trained {
            out,
            global_step,
            interrupted,
            eval,
        } => {
            let summary = serde_json::json!({
                "out": out,
                "global_step": global_step,
                "interrupted": interrupted,
                "eval_mean_return": eval.as_ref().map(|e| e.mean_return),
                "eval_episodes": eval.as_ref().map(|e| e.episodes),
            });
            println!("{summary}");
        }
    }
    Ok(())
}
