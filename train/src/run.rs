//! What every run shares, whatever the algorithm: start a new run or resume one ([`start`]),
//! choose and probe the device and set libtorch up ([`setup_torch`]), build the training
//! environments ([`make_envs`]), save checkpoints on schedule and on Ctrl-C ([`Saver`]), and
//! at the end export `model.onnx` and evaluate it ([`finish`]). The loops are
//! [`crate::ppo::train`] and [`crate::dqn::train`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cartridge_contract::{key, onnx_key};
use cartridge_export::{Algo, Metadata};
use cartridge_infer::rom::Rom;
use cartridge_infer::session::{evaluate, Evaluation};
use tch::Device;

use crate::checkpoint::{self, Loaded, RunState, Segment};
use crate::config::{AlgoArgs, RunArgs, RESUME_FLAGS};
use crate::dist::Interrupt;
use crate::logger::RunLog;
use crate::precision::{pick_precision, Bf16Support, Precision, PrecisionChoice};
use crate::seeds::RunSeeds;
use crate::vecenv::{AtariTrainEnv, VecEnv};
use crate::{Error, Result};

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Trained (fully or until Ctrl-C); the run folder and, when finished, the evaluation.
    Trained {
        /// The run folder.
        out: PathBuf,
        /// Agent steps reached.
        global_step: u64,
        /// Whether Ctrl-C stopped it early.
        interrupted: bool,
        /// Evaluation of the exported model (when finished and asked for).
        eval: Option<Evaluation>,
    },
    /// `--bench`: the figures as JSON ([`crate::ppo::BenchReport`],
    /// [`crate::dqn::DqnBenchReport`]), kept opaque so this module depends on no algorithm.
    Bench(serde_json::Value),
}

/// A `--bench` report as the JSON [`Outcome::Bench`] carries.
pub(crate) fn bench_json(report: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(report).map_err(|e| Error::Log(e.to_string()))
}

/// The training device and why it was chosen (the start line prints both).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceChoice {
    /// The device.
    pub device: Device,
    /// Why: the flag, what libtorch sees (CUDA device count, cuDNN).
    pub reason: String,
}

/// Whether the kernel shows an NVIDIA GPU (its driver's device nodes or `/proc` entries),
/// whatever libtorch can do with it.
fn nvidia_gpu_visible() -> bool {
    std::path::Path::new("/dev/nvidia0").exists()
        || std::fs::read_dir("/proc/driver/nvidia/gpus").is_ok_and(|mut d| d.next().is_some())
}

/// Why libtorch may not see a GPU, and what to do.
const CUDA_HINTS: &str = "likely causes: the NVIDIA driver is older than CUDA 13.0 needs \
     (driver >= 580), the GPU is older than the torch wheel supports (see \
     `python3 -c 'import torch; print(torch.cuda.get_arch_list())'`), CUDA_VISIBLE_DEVICES hides \
     it, or libtorch is a CPU-only build; `python3 -c 'import torch; \
     print(torch.cuda.is_available())'` with the same torch tells which (docs/GPU.md)";

/// Resolves `--device` (`auto`, `cpu`, `cuda`): `cuda` without a usable GPU is an error that
/// names the likely causes; `auto` falls back to the CPU, loudly when an NVIDIA GPU is visible
/// but libtorch cannot use it.
pub fn pick_device(name: &str) -> Result<DeviceChoice> {
    let cuda = tch::Cuda::device_count();
    let seen = format!(
        "libtorch sees {cuda} CUDA device(s), cuDNN {}",
        if tch::Cuda::cudnn_is_available() {
            "available"
        } else {
            "unavailable"
        }
    );
    match name {
        "cpu" => Ok(DeviceChoice {
            device: Device::Cpu,
            reason: "--device cpu".into(),
        }),
        "cuda" if cuda > 0 => Ok(DeviceChoice {
            device: Device::Cuda(0),
            reason: format!("--device cuda; {seen}"),
        }),
        "cuda" => Err(Error::Device(format!(
            "--device cuda, but libtorch sees no CUDA device{}; {CUDA_HINTS}. Use --device cpu \
             to train on the CPU",
            if nvidia_gpu_visible() {
                " although an NVIDIA GPU is visible to the system"
            } else {
                " (and no NVIDIA GPU is visible to the system)"
            }
        ))),
        "auto" if cuda > 0 => Ok(DeviceChoice {
            device: Device::Cuda(0),
            reason: format!("--device auto; {seen}"),
        }),
        "auto" => {
            if nvidia_gpu_visible() {
                eprintln!(
                    "WARNING: an NVIDIA GPU is visible but libtorch cannot use it; training on \
                     the CPU, which is far slower. {CUDA_HINTS}"
                );
            }
            Ok(DeviceChoice {
                device: Device::Cpu,
                reason: format!("--device auto; {seen}"),
            })
        }
        other => Err(Error::Config(format!(
            "--device {other}: use auto, cpu or cuda"
        ))),
    }
}

/// Runs one small operation on `device` and reads it back, so a device that cannot compute
/// fails before anything is written.
pub fn probe_device(device: Device) -> Result<()> {
    let probe = || -> std::result::Result<f64, tch::TchError> {
        let x = tch::Tensor::f_ones([4], (tch::Kind::Float, device))?;
        x.f_sum(tch::Kind::Float)?.f_double_value(&[])
    };
    match probe() {
        Ok(4.0) => Ok(()),
        Ok(v) => Err(Error::Device(format!(
            "a test sum of four ones on {device:?} gave {v}; the device is not usable"
        ))),
        Err(e) => Err(Error::Device(format!(
            "a test operation on {device:?} failed: {e}; {CUDA_HINTS}"
        ))),
    }
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A run's starting point: the arguments in force, its folder and the checkpoint it resumes.
#[derive(Debug)]
pub(crate) struct Start<A> {
    pub args: A,
    pub out: PathBuf,
    pub loaded: Option<Loaded<A>>,
    pub state: RunState<A>,
}

/// Resolves `--out` / `--resume`: a resumed run keeps its saved learning arguments and takes
/// only the run-time flags from the command; a new run refuses a folder that holds one.
pub(crate) fn start<A: AlgoArgs>(args: &A) -> Result<Start<A>> {
    let run = args.run();
    let (args_used, out, loaded) = match &run.resume {
        Some(dir) => {
            if let Some(flag) = run
                .given
                .iter()
                .find(|f| !RESUME_FLAGS.contains(&f.as_str()))
            {
                return Err(Error::Config(format!(
                    "--{} cannot be given with --resume: a resumed run keeps its saved learning \
                     arguments (see {}); only --device, --precision, --threads, --env-threads, \
                     --env-groups, --eval-episodes, --save-every and --total-timesteps may change. Drop it, or \
                     start a new run with --out",
                    flag.replace('_', "-"),
                    checkpoint::checkpoints_dir(dir).join("latest").display()
                )));
            }
            let l: Loaded<A> = checkpoint::load(dir)?;
            let mut a = l.state.args.clone();
            if run.given.iter().any(|f| f == "total_timesteps") {
                let total = *args.clone().total_timesteps_mut();
                if total <= l.state.global_step {
                    return Err(Error::Config(format!(
                        "--total-timesteps {total} does not extend the run: it is at agent step \
                         {} already; give a larger total",
                        l.state.global_step
                    )));
                }
                *a.total_timesteps_mut() = total;
            }
            let saved = a.run_mut();
            saved.device.clone_from(&run.device);
            // Unlike --device (whose default, auto, fits any machine), an omitted --precision
            // keeps the run's: its default would silently switch a bf16 run to fp32.
            if run.given.iter().any(|f| f == "precision") {
                saved.precision.clone_from(&run.precision);
            }
            saved.threads = run.threads;
            saved.env_threads = run.env_threads;
            saved.env_groups = run.env_groups;
            saved.eval_episodes = run.eval_episodes;
            if run.given.iter().any(|f| f == "save_every") {
                saved.save_every = run.save_every;
            }
            saved.bench = false;
            (a, dir.clone(), Some(l))
        }
        None => {
            let out = match (&run.out, run.bench) {
                (Some(o), _) => o.clone(),
                (None, true) => PathBuf::new(),
                (None, false) => {
                    return Err(Error::Config(
                        "--out RUN_DIR is required (or --resume RUN_DIR, or --bench)".into(),
                    ))
                }
            };
            if !run.bench && checkpoint::checkpoints_dir(&out).join("latest").exists() {
                return Err(Error::Config(format!(
                    "{} already holds a run; continue it with --resume {0} or pick another --out",
                    out.display()
                )));
            }
            (args.clone(), out, None)
        }
    };
    let state = match &loaded {
        Some(l) => {
            let mut s = l.state.clone();
            s.args = args_used.clone();
            s.resumes += 1;
            s
        }
        None => RunState::new(args_used.clone()),
    };
    Ok(Start {
        args: args_used,
        out,
        loaded,
        state,
    })
}

/// The device (probed) and libtorch threads of `run`; cuDNN's benchmark mode on CUDA (the
/// input shapes are fixed, so its autotuning pays once).
pub(crate) fn setup_torch(run: &RunArgs) -> Result<DeviceChoice> {
    let choice = pick_device(&run.device)?;
    probe_device(choice.device)?;
    if choice.device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    tch::set_num_threads(run.threads.unwrap_or_else(cores).max(1) as i32);
    Ok(choice)
}

/// The precision `run`'s `--precision` asks for on `device` ([`pick_precision`]), its
/// warning (bf16 without native hardware support) printed to stderr.
pub(crate) fn setup_precision(run: &RunArgs, device: Device) -> Result<PrecisionChoice> {
    let choice = pick_precision(&run.precision, &Bf16Support::probe(device))?;
    if let Some(w) = &choice.warning {
        eprintln!("warning: {w}");
    }
    Ok(choice)
}

/// Records in `state` that this process trains the run from its current step on `device` in
/// `precision`.
pub(crate) fn record_segment<A>(
    state: &mut RunState<A>,
    device: Device,
    precision: Precision,
    ranks: u64,
) {
    state.history.push(Segment {
        from_step: state.global_step,
        device: format!("{device:?}"),
        precision: precision.to_string(),
        threads: tch::get_num_threads().max(1) as usize,
        ranks,
    });
}

/// `num_envs` training environments (fresh games on every (re)start, seeded per env and per
/// resume; under MPI, rank `r`'s are the run's environments `r * num_envs ..`) on their worker
/// threads, and the game's minimal action set.
pub(crate) fn make_envs(
    rom: &Rom,
    run: &RunArgs,
    num_envs: usize,
    seeds: RunSeeds,
) -> Result<(VecEnv, Vec<i32>, usize)> {
    let first = seeds.rank as usize * num_envs;
    let envs = (0..num_envs)
        .map(|i| AtariTrainEnv::new(rom, seeds.env(first + i), run.sticky))
        .collect::<Result<Vec<_>>>()?;
    let actions = envs[0].actions();
    let threads = run
        .env_threads
        .unwrap_or_else(|| cores().min(num_envs))
        .max(1);
    let envs = VecEnv::new(envs, threads)?.with_groups(run.env_groups);
    Ok((envs, actions, threads))
}

/// Refuses a checkpoint whose action set is not `rom`'s.
pub(crate) fn check_actions<A>(l: &Loaded<A>, rom: &Rom, actions: &[i32]) -> Result<()> {
    if l.model
        .meta
        .actions
        .iter()
        .map(|&x| x as i32)
        .ne(actions.iter().copied())
    {
        return Err(Error::Resume {
            path: l.dir.clone(),
            reason: format!("the checkpoint's action set differs from {}'s", rom.game),
        });
    }
    Ok(())
}

/// Set by the Ctrl-C (or SIGTERM) handler; the loop finishes its step, saves and exits.
static STOP: AtomicBool = AtomicBool::new(false);

/// A checkpoint ready to write, and what to print once it is written.
pub(crate) type PendingSave = Box<dyn FnOnce() -> Result<String> + Send>;

/// Under MPI, rank 0's checkpoint of its last completed iteration ([`set_pending_save`]).
static PENDING: Mutex<Option<PendingSave>> = Mutex::new(None);

/// Held while a checkpoint is written, so the handler never writes beside the loop.
static SAVING: Mutex<()> = Mutex::new(());

/// Installs the handler of Ctrl-C and SIGTERM (once per process; later calls do nothing).
///
/// A single process sets [`STOP`]; the loop saves after its step. Under MPI (`interrupt`)
/// there is no time for that: `mpirun` answers Ctrl-C with SIGTERM to every rank, SIGKILL
/// about a second later, and SIGKILL to all as soon as one rank exits. So rank 0 writes the
/// checkpoint of its last completed iteration ([`set_pending_save`]) while the others wait,
/// then tells them it is done ([`Interrupt::release_others`]), and every rank exits with
/// status 0.
pub(crate) fn install_handler(interrupt: Option<Interrupt>) {
    // Fails only if a handler is already installed (an earlier call), which then stays.
    let _ = ctrlc::set_handler(move || {
        STOP.store(true, Ordering::SeqCst);
        let Some(int) = interrupt else {
            return;
        };
        if int.is_root() {
            // The loop's threads keep computing until the process exits; they yield the
            // CPU to this one so that the checkpoint is written well inside the second.
            yield_other_threads();
            let _saving = SAVING.lock().unwrap_or_else(|p| p.into_inner());
            let pending = PENDING.lock().unwrap_or_else(|p| p.into_inner()).take();
            match pending.map(|save| save()) {
                Some(Ok(msg)) => eprintln!("{msg}"),
                Some(Err(e)) => eprintln!("error: interrupted, and the checkpoint failed: {e}"),
                None => eprintln!("interrupted before the first iteration ended: nothing saved"),
            }
            int.release_others();
        } else {
            int.wait_for_root();
        }
        // `_exit`, not `exit`: the loop's threads are still inside libtorch, whose static
        // destructors `exit` would run under them.
        // SAFETY: `_exit` ends the process at once; nothing runs after it.
        unsafe { libc::_exit(0) }
    });
}

/// Replaces the checkpoint the handler writes on an interrupt under MPI.
pub(crate) fn set_pending_save(save: PendingSave) {
    *PENDING.lock().unwrap_or_else(|p| p.into_inner()) = Some(save);
}

/// Lowers every other thread of this process to the lowest priority (nice 19), which any
/// process may do to its own threads.
fn yield_other_threads() {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for tid in tasks
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if tid != me {
            // SAFETY: setpriority on a thread id of this process; failure is harmless.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) };
        }
    }
}

/// Checkpointing of a training loop: every `save_every` agent steps, on Ctrl-C, and at the end.
pub(crate) struct Saver {
    last_saved: u64,
    every: u64,
    started: Instant,
    seconds_before: f64,
}

impl Saver {
    /// A saver for a loop starting at `state`. Its [`Self::tick`] sees Ctrl-C once the loop
    /// has installed the handler ([`install_handler`]).
    pub(crate) fn new<A>(state: &RunState<A>, every: u64) -> Self {
        Self {
            last_saved: state.global_step,
            every,
            started: Instant::now(),
            seconds_before: state.train_seconds,
        }
    }

    /// After a loop step: saves with `save` (and redraws the curve) when a save is due or
    /// Ctrl-C was pressed; on Ctrl-C returns the outcome to end the run with.
    pub(crate) fn tick<A>(
        &mut self,
        state: &mut RunState<A>,
        out: &Path,
        log: &RunLog,
        title: &str,
        save: impl FnOnce(&RunState<A>) -> Result<()>,
    ) -> Result<Option<Outcome>> {
        let stop = STOP.load(Ordering::SeqCst);
        if stop || state.global_step / self.every > self.last_saved / self.every {
            self.save_now(state, save)?;
            log.plot(title)?;
        }
        if !stop {
            return Ok(None);
        }
        log.println(format!(
            "interrupted: saved a checkpoint at step {}; continue with --resume {}",
            state.global_step,
            out.display()
        ));
        log.finish();
        Ok(Some(Outcome::Trained {
            out: out.to_path_buf(),
            global_step: state.global_step,
            interrupted: true,
            eval: None,
        }))
    }

    /// At the end of the schedule: saves unless this step is saved already.
    pub(crate) fn at_end<A>(
        &mut self,
        state: &mut RunState<A>,
        resumed: bool,
        save: impl FnOnce(&RunState<A>) -> Result<()>,
    ) -> Result<()> {
        if self.last_saved != state.global_step || !resumed {
            self.save_now(state, save)?;
        }
        Ok(())
    }

    /// Wall seconds trained so far, over every process of the run.
    pub(crate) fn train_seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    fn save_now<A>(
        &mut self,
        state: &mut RunState<A>,
        save: impl FnOnce(&RunState<A>) -> Result<()>,
    ) -> Result<()> {
        state.train_seconds = self.train_seconds();
        let _saving = SAVING.lock().unwrap_or_else(|p| p.into_inner());
        save(state)?;
        self.last_saved = state.global_step;
        Ok(())
    }
}

/// Checkpoint metadata of a run at `state`.
pub(crate) fn metadata<A: serde::Serialize>(
    algo: Algo,
    rom: &Rom,
    actions: &[i32],
    state: &RunState<A>,
    seed: u64,
) -> Result<Metadata> {
    let mut meta = Metadata::new(
        algo,
        rom.game.clone(),
        rom.md5.clone(),
        actions.iter().map(|&x| x as u32).collect(),
    );
    meta.global_step = state.global_step;
    meta.seed = seed;
    meta.args = serde_json::to_string(&state.args).map_err(|e| Error::Log(e.to_string()))?;
    Ok(meta)
}

/// Ends a run that reached its total: writes `model.onnx` from `ckpt`, evaluates it
/// (`run.eval_episodes` full games, the algorithm's default action selection), writes
/// `eval.json`, records the result in the model's metadata and reports the outcome.
pub(crate) fn finish(
    out: PathBuf,
    rom: &Rom,
    run: &RunArgs,
    ckpt: &cartridge_export::Checkpoint,
    global_step: u64,
) -> Result<Outcome> {
    let eval = evaluate_export(&out, rom, run, ckpt)?;
    Ok(Outcome::Trained {
        out,
        global_step,
        interrupted: false,
        eval,
    })
}

fn evaluate_export(
    out: &Path,
    rom: &Rom,
    run: &RunArgs,
    ckpt: &cartridge_export::Checkpoint,
) -> Result<Option<Evaluation>> {
    let onnx = out.join("model.onnx");
    cartridge_export::write_onnx(ckpt, &[], &onnx)?;
    if run.eval_episodes == 0 {
        return Ok(None);
    }
    let eval_seed = RunSeeds {
        seed: run.seed,
        resume: 0,
        rank: 0,
    }
    .eval();
    let report = evaluate(&onnx, rom, run.eval_episodes, eval_seed, 0.0)?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Log(e.to_string()))?;
    cartridge_export::write_atomic(out.join("eval.json"), &json)?;
    let extra = [
        (onnx_key(key::EVAL_EPISODES), report.episodes.to_string()),
        (
            onnx_key(key::EVAL_MEAN_RETURN),
            format!("{:.3}", report.mean_return),
        ),
    ];
    cartridge_export::write_onnx(ckpt, &extra, &onnx)?;
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choice_says_what_and_why() {
        let cpu = pick_device("cpu").expect("cpu");
        assert_eq!(cpu.device, Device::Cpu);
        assert_eq!(cpu.reason, "--device cpu");
        probe_device(Device::Cpu).expect("the CPU computes");
        let auto = pick_device("auto").expect("auto");
        assert!(
            auto.reason.starts_with("--device auto; libtorch sees"),
            "{}",
            auto.reason
        );
        if tch::Cuda::device_count() == 0 {
            // This machine has no GPU: auto picks the CPU, cuda is refused with the causes.
            assert_eq!(auto.device, Device::Cpu);
            let e = pick_device("cuda").expect_err("no GPU here").to_string();
            assert!(e.contains("libtorch sees no CUDA device"), "{e}");
            assert!(
                e.contains("driver >= 580") && e.contains("--device cpu"),
                "{e}"
            );
        } else {
            assert_eq!(auto.device, Device::Cuda(0));
            probe_device(Device::Cuda(0)).expect("the GPU computes");
        }
        assert!(pick_device("tpu").is_err());
    }
}
