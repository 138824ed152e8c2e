//! `play MODEL.onnx --rom GAME`: runs an ONNX policy on a real Atari ROM, in a window at real
//! time or headless, and prints one JSON summary line last on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use serde::Serialize;

use cartridge_infer::ale::{Emulator, EmulatorConfig};
use cartridge_infer::policy::{Algo, ModelOverrides, OnnxPolicy};
use cartridge_infer::preprocess::{AtariConfig, AtariEnv};
use cartridge_infer::record::GifRecorder;
use cartridge_infer::rom::RomSearch;
use cartridge_infer::select::Selection;
use cartridge_infer::session::{Game, Observer, Session, SessionConfig};
use cartridge_infer::stats::{percentile, process_cpu_seconds, ReturnStats};
use cartridge_infer::window::{display_available, GameWindow, WindowEvent};

/// Play an ONNX Atari policy on a real ROM (ALE + ONNX Runtime).
#[derive(Debug, Parser)]
#[command(
    name = "play",
    version,
    about = "Play an ONNX Atari policy on a real ROM (ALE + ONNX Runtime), in a window or headless"
)]
struct Args {
    /// The policy: an ONNX model with input `obs` u8 [batch, 4, 84, 84], or a recurrent one
    /// with `obs` [batch, 1, 84, 84] and its state inputs (see README).
    #[arg(required_unless_present = "rom_info")]
    model: Option<PathBuf>,
    /// Print the ROM's game, file, MD5 and minimal action set (ALE ids) as JSON, then exit.
    #[arg(long)]
    rom_info: bool,
    /// Game name (breakout, pong, space_invaders, ...) or path to a ROM file.
    #[arg(long)]
    rom: String,
    /// Episodes (full games) to play [default: 1 headless, until closed in a window].
    #[arg(long)]
    episodes: Option<u32>,
    /// Time limit per episode in emulated frames, reported as truncation.
    #[arg(long, default_value_t = 108_000)]
    max_frames: u64,
    /// Seed of the emulator, NoopReset and action sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sticky-action probability (0.25 for the Machado et al. 2018 protocol).
    #[arg(long, default_value_t = 0.0)]
    sticky: f32,
    /// Write an animated GIF of the agent's colour frames to this path.
    #[arg(long)]
    record: Option<PathBuf>,
    /// No window: play as fast as possible and print results.
    #[arg(long)]
    headless: bool,
    /// Window frame rate in emulated frames per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Window scale factor (1, 2, 4 or 8).
    #[arg(long, default_value_t = 2)]
    scale: u32,
    /// Always take the best-scoring action (no sampling, no epsilon).
    #[arg(long, conflicts_with = "epsilon")]
    greedy: bool,
    /// Epsilon-greedy with this epsilon (DQN default 0.05).
    #[arg(long)]
    epsilon: Option<f32>,
    /// Algorithm of a model without `cartridge.algo` metadata: ppo (logits) or dqn (Q-values).
    #[arg(long, value_parser = ["ppo", "dqn"])]
    algo: Option<String>,
    /// Accept a ROM whose MD5 is not one of ale-py 0.12.1's ROMs.
    #[arg(long)]
    allow_unknown_rom: bool,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// NoopReset: at most this many no-op frames at the start of a game (0 disables).
    #[arg(long, default_value_t = 30)]
    noop_max: u32,
}

/// Validated settings derived from [`Args`].
#[derive(Debug)]
struct PlayConfig {
    model: PathBuf,
    rom: String,
    episodes: Option<u32>,
    max_frames: u64,
    seed: u64,
    sticky: f32,
    record: Option<PathBuf>,
    headless: bool,
    fps: u32,
    scale: u32,
    selection_override: Option<Selection>,
    overrides: ModelOverrides,
    allow_unknown_rom: bool,
    threads: usize,
    noop_max: u32,
}

impl PlayConfig {
    fn from_args(a: Args) -> anyhow::Result<Self> {
        if !(0.0..1.0).contains(&a.sticky) {
            bail!(
                "--sticky must be in [0, 1) (0.25 is the Machado et al. protocol), got {}",
                a.sticky
            );
        }
        if let Some(e) = a.epsilon {
            if !(0.0..=1.0).contains(&e) {
                bail!("--epsilon must be in [0, 1], got {e}");
            }
        }
        if a.max_frames == 0 {
            bail!("--max-frames must be at least 1");
        }
        if a.episodes == Some(0) {
            bail!("--episodes must be at least 1");
        }
        if a.threads == 0 {
            bail!("--threads must be at least 1");
        }
        cartridge_infer::window::scale_of(a.scale)?;
        let mut headless = a.headless;
        if !headless && !display_available() {
            eprintln!("no display (DISPLAY is unset): running headless");
            headless = true;
        }
        let selection_override = if a.greedy {
            Some(Selection::Greedy)
        } else {
            a.epsilon.map(Selection::EpsilonGreedy)
        };
        let algo = a.algo.as_deref().map(str::parse::<Algo>).transpose()?;
        let model = a.model.context("a model path is required")?;
        Ok(Self {
            model,
            rom: a.rom,
            episodes: a.episodes.or(headless.then_some(1)),
            max_frames: a.max_frames,
            seed: a.seed,
            sticky: a.sticky,
            record: a.record,
            headless,
            fps: a.fps,
            scale: a.scale,
            selection_override,
            overrides: ModelOverrides { algo },
            allow_unknown_rom: a.allow_unknown_rom,
            threads: a.threads,
            noop_max: a.noop_max,
        })
    }
}

/// The last line on stdout.
#[derive(Debug, Serialize)]
struct Summary {
    game: String,
    model: String,
    /// `ppo` or `dqn`.
    algo: String,
    selection: String,
    episodes: usize,
    returns: Vec<i64>,
    mean_return: f64,
    /// Population standard deviation of `returns`.
    std_return: f64,
    min_return: i64,
    max_return: i64,
    frames: u64,
    wall_s: f64,
    emulator_fps: f64,
    decision_ms_p50: f64,
    decision_ms_p99: f64,
    preprocess_ms_p50: f64,
    cpu_percent: f64,
    headless: bool,
    sticky: f32,
    seed: u64,
}

/// What `play` watches while the session plays: the window (shows frames, remembers a quit
/// request or a window error), the GIF recorder, decision timings, and the per-game lines.
struct Screen {
    game: String,
    window: Option<GameWindow>,
    quit: bool,
    error: Option<cartridge_infer::Error>,
    shown: u64,
    clock: Instant,
    recorder: Option<GifRecorder>,
    decision_ms: Vec<f64>,
    preprocess_ms: Vec<f64>,
    frames: u64,
    episode_start: Instant,
    max_frames: u64,
}

impl Observer for Screen {
    fn frame(&mut self, rgb: &[u8], episode: u32, score: i64) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        if self.quit || self.error.is_some() {
            return;
        }
        self.shown += 1;
        if self.shown % 30 == 0 {
            let fps = 30.0 / self.clock.elapsed().as_secs_f64().max(1e-9);
            self.clock = Instant::now();
            w.set_title(&format!(
                "Cartridge: {} | episode {episode} | score {score} | {fps:.0} fps",
                self.game
            ));
        }
        match w.show(rgb) {
            Ok(WindowEvent::Continue) => {}
            Ok(WindowEvent::Quit) => self.quit = true,
            Err(e) => self.error = Some(e),
        }
    }

    fn observe(&mut self, env: &AtariEnv) -> cartridge_infer::Result<()> {
        match self.recorder.as_mut() {
            Some(r) => r.push(env.pooled_rgb()),
            None => Ok(()),
        }
    }

    fn decision(&mut self, decision_ms: f64, preprocess_ms: f64) {
        self.decision_ms.push(decision_ms);
        self.preprocess_ms.push(preprocess_ms);
    }

    fn stop(&mut self) -> cartridge_infer::Result<bool> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.quit),
        }
    }

    fn game_over(&mut self, episode: u32, game: &Game) {
        self.frames += game.frames;
        println!(
            "episode {episode}: score {} frames {} seconds {:.2}{}",
            game.score,
            game.frames,
            self.episode_start.elapsed().as_secs_f64(),
            if game.frames >= self.max_frames {
                " (time limit)"
            } else {
                ""
            }
        );
        self.episode_start = Instant::now();
    }
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

fn print_rom_info(a: &Args) -> anyhow::Result<()> {
    let rom = RomSearch {
        allow_unknown: a.allow_unknown_rom,
    }
    .resolve(&a.rom)?;
    let emu = Emulator::new(&rom, EmulatorConfig::default())?;
    let actions: Vec<String> = emu
        .minimal_action_set()
        .iter()
        .map(i32::to_string)
        .collect();
    let info = serde_json::json!({
        "game": rom.game,
        "path": rom.path,
        "md5": rom.md5,
        "known": rom.known,
        "actions": actions.join(","),
    });
    println!("{info}");
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rom_info {
        return print_rom_info(&args);
    }
    let cfg = PlayConfig::from_args(args)?;
    let rom = RomSearch {
        allow_unknown: cfg.allow_unknown_rom,
    }
    .resolve(&cfg.rom)?;
    let policy = OnnxPolicy::load(&cfg.model, cfg.threads, &cfg.overrides)?;
    let env_cfg = AtariConfig {
        noop_max: cfg.noop_max,
        max_episode_frames: cfg.max_frames,
        every_frame_rgb: !cfg.headless,
        ..AtariConfig::default()
    };
    let frame_ms = 1000 * env_cfg.frame_skip / 60;
    let mut session = Session::new(
        policy,
        &rom,
        &SessionConfig {
            seed: cfg.seed,
            sticky: cfg.sticky,
            selection: cfg.selection_override,
            env: env_cfg,
        },
    )?;
    let info = session.policy().info().clone();
    let window = if cfg.headless {
        None
    } else {
        match GameWindow::open(&format!("Cartridge: {}", rom.game), cfg.scale, cfg.fps) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("{e}; running headless");
                None
            }
        }
    };
    let mut screen = Screen {
        game: rom.game.clone(),
        window,
        quit: false,
        error: None,
        shown: 0,
        clock: Instant::now(),
        recorder: cfg
            .record
            .as_deref()
            .map(|p| GifRecorder::create(p, frame_ms))
            .transpose()?,
        decision_ms: Vec::new(),
        preprocess_ms: Vec::new(),
        frames: 0,
        episode_start: Instant::now(),
        max_frames: cfg.max_frames,
    };

    let model_name = cfg.model.display().to_string();
    let started = Instant::now();
    let cpu0 = process_cpu_seconds();
    let games = session.play(cfg.episodes, &mut screen)?;
    let returns: Vec<i64> = games.iter().map(|g| g.score).collect();
    let total_frames = screen.frames;
    let (mut decision_ms, mut preprocess_ms) = (screen.decision_ms, screen.preprocess_ms);
    let recorder = screen.recorder;
    let headless = screen.window.is_none();
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_s = process_cpu_seconds() - cpu0;
    if let Some(r) = recorder {
        let frames = r.frames();
        let path = r.finish()?;
        eprintln!("recorded {frames} frames to {}", path.display());
    }
    let stats = ReturnStats::of(&returns.iter().map(|&r| r as f64).collect::<Vec<_>>());
    let summary = Summary {
        game: rom.game.clone(),
        model: model_name,
        algo: info.algo.to_string(),
        selection: session.selection().to_string(),
        episodes: returns.len(),
        mean_return: stats.mean,
        std_return: stats.std,
        min_return: stats.min as i64,
        max_return: stats.max as i64,
        returns,
        frames: total_frames,
        wall_s,
        emulator_fps: total_frames as f64 / wall_s.max(1e-9),
        decision_ms_p50: percentile(&mut decision_ms, 0.5),
        decision_ms_p99: percentile(&mut decision_ms, 0.99),
        preprocess_ms_p50: percentile(&mut preprocess_ms, 0.5),
        cpu_percent: 100.0 * cpu_s / wall_s.max(1e-9),
        headless,
        sticky: cfg.sticky,
        seed: cfg.seed,
    };
    println!(
        "{}",
        serde_json::to_string(&summary).context("cannot serialise the summary")?
    );
    Ok(())
}
