//! `train ppo|dqn --rom GAME --out runs/NAME`: PPO or DQN on libtorch, checkpoints, logs, ONNX
//! export and evaluation. See `train ppo --help` and `train dqn --help` for every flag (named
//! as CleanRL's `ppo_atari.py` and `dqn_atari.py`).

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use cartridge_train::dist::Dist;
use cartridge_train::dqn::{self, DqnArgs};
use cartridge_train::logger::{plot_curve, plot_returns, read_metrics};
use cartridge_train::ppo::{self, PpoArgs};
use cartridge_train::run::Outcome;

/// Train Atari agents from pixels with libtorch.
#[derive(Debug, Parser)]
#[command(
    name = "train",
    version,
    about = "Train Atari agents from pixels (PPO and DQN on libtorch)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Proximal Policy Optimization (Schulman et al. 2017), CleanRL ppo_atari.py semantics.
    Ppo(Box<PpoArgs>),
    /// Deep Q-Network (Mnih et al. 2015; --double: van Hasselt et al. 2016), CleanRL
    /// dqn_atari.py semantics, with a frame-deduplicating replay memory.
    Dqn(Box<DqnArgs>),
    /// Redraw RUN/curve.png from RUN/metrics.csv; with --compare, draw the returns of RUN and
    /// other runs on one chart instead.
    Plot {
        /// The run folder.
        run: std::path::PathBuf,
        /// Plot title.
        #[arg(long, default_value = "training curve")]
        title: String,
        /// Other run folders whose mean return goes on the same chart as RUN's.
        #[arg(long, num_args = 1..)]
        compare: Vec<std::path::PathBuf>,
        /// Legend labels, comma separated, RUN's first [default: the folder names].
        #[arg(long, value_delimiter = ',', requires = "compare")]
        labels: Vec<String>,
        /// With --compare: the PNG to write [default: RUN/compare.png].
        #[arg(long, requires = "compare")]
        out: Option<std::path::PathBuf>,
        /// With --compare: draw up to this many agent steps (e.g. the shortest run's).
        #[arg(long, requires = "compare")]
        max_steps: Option<u64>,
    },
}

fn main() -> ExitCode {
    passive_openmp();
    keep_freed_memory();
    let mut dist = None;
    match run(&mut dist) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match dist.filter(|d| d.size() > 1) {
            // The other ranks may wait in a collective for this one: end them all.
            Some(d) => {
                eprintln!("error (rank {} of {}): {e:#}", d.rank(), d.size());
                d.abort(1)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Makes glibc keep the memory libtorch frees for reuse instead of returning it to the kernel.
///
/// By default glibc serves allocations above its (dynamic) mmap threshold with fresh mappings
/// and returns freed memory at the top of the heap past 128 KiB, so the tensors of every
/// minibatch and rollout step (up to tens of MB) are page-faulted in and zeroed by the kernel
/// again and again: page faults and page clearing were about 5 % of a training process's CPU
/// time (perf, 2-core VM). Here allocations up to 32 MiB (glibc's largest threshold) come from
/// the heap, which is neither trimmed below 1 GiB nor grown by less than 256 MiB at a time.
/// Larger buffers (DQN's replay memory) are still their own mappings. The heap then stays at
/// its peak, which the process reaches in its first iteration anyway.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

/// Restarts this process with `OMP_WAIT_POLICY=PASSIVE` unless the variable is set.
///
/// libtorch's OpenMP threads otherwise spin for a while after every parallel region, on the
/// cores the environment workers need right after each rollout inference (measured on a
/// 2-core machine: environment stepping 0.65 -> 0.42 s per 1,024-step iteration). libgomp
/// reads the variable once, when libtorch loads it before `main`, so setting it here needs an
/// `exec` of the same binary with the same arguments (same process id, so signals still
/// reach it). An explicit `OMP_WAIT_POLICY` is kept as given.
fn passive_openmp() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .exec();
    eprintln!("warning: could not restart with OMP_WAIT_POLICY=PASSIVE ({err}); continuing");
}

/// The ids of the arguments given on the command line of the subcommand (not defaulted;
/// argument groups, which clap's `flatten` adds, left out).
fn given_flags(matches: &ArgMatches) -> Vec<String> {
    let Some((name, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    let cmd = Cli::command();
    let Some(sub_cmd) = cmd.find_subcommand(name) else {
        return Vec::new();
    };
    sub_cmd
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| sub.value_source(id) == Some(ValueSource::CommandLine))
        .map(str::to_string)
        .collect()
}

/// Parses the command line, joins the MPI run when `mpirun` started this process (into
/// `dist`, which outlives this call so that `main` can end every rank on an error), and runs
/// the command; only rank 0 prints the summary.
fn run(dist: &mut Option<Dist>) -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let given = given_flags(&matches);
    let d = dist.insert(Dist::from_env()?);
    let outcome = match cli.command {
        Command::Ppo(mut args) => {
            args.run.given = given;
            ppo::train_with(&args, d)?
        }
        Command::Dqn(mut args) => {
            if d.size() > 1 {
                anyhow::bail!(
                    "train dqn runs as one process (its replay memory and single environment do \
                     not split across ranks); run it without mpirun, or use train ppo under mpirun"
                );
            }
            args.run.given = given;
            dqn::train(&args)?
        }
        Command::Plot {
            run,
            title,
            compare,
            labels,
            out,
            max_steps,
        } => {
            if compare.is_empty() {
                let rows = read_metrics(&run.join("metrics.csv"))?;
                plot_curve(&run.join("curve.png"), &title, &rows)?;
                println!("wrote {}", run.join("curve.png").display());
                return Ok(());
            }
            let runs: Vec<std::path::PathBuf> =
                std::iter::once(run.clone()).chain(compare).collect();
            if !labels.is_empty() && labels.len() != runs.len() {
                anyhow::bail!(
                    "--labels has {} labels for {} runs; give one per run, RUN's first",
                    labels.len(),
                    runs.len()
                );
            }
            let mut series = Vec::new();
            for (i, dir) in runs.iter().enumerate() {
                let label = labels.get(i).cloned().unwrap_or_else(|| {
                    dir.file_name().map_or_else(
                        || dir.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    )
                });
                series.push((label, read_metrics(&dir.join("metrics.csv"))?));
            }
            let path = out.unwrap_or_else(|| run.join("compare.png"));
            plot_returns(&path, &title, &series, max_steps)?;
            println!("wrote {}", path.display());
            return Ok(());
        }
    };
    if !d.is_root() {
        return Ok(());
    }
    match outcome {
        Outcome::Bench(b) => println!("{b}"),
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
