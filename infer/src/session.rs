//! Full games of a policy under the evaluation protocol: the one loop that `play` and
//! `train`'s final evaluation share, so `play MODEL --rom GAME --headless --episodes N --seed S`
//! replays an `eval.json` of seed `S` game for game.
//!
//! The protocol (README, Contracts): full games scored by their raw return, NoopReset
//! starts (1..=30 no-ops), training's life-start sequence after a lost life (EpisodicLife's
//! reset: a no-op step, FireReset, the frame stack refilled; a recurrent state zeroed), at
//! most 108,000 frames a game, frame skip 4, the algorithm's
//! default selection (PPO samples from the policy, DQN is epsilon-greedy with 0.05) unless
//! the caller picks another. One seed `S` is split into three streams
//! ([`seed::stream`]): the emulator's ([`Stream::Emulator`], sticky actions), the action
//! selector's ([`Stream::Selector`]) and NoopReset's ([`Stream::NoopReset`]).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::ale::{Emulator, EmulatorConfig};
use crate::policy::{ModelOverrides, OnnxPolicy};
use crate::preprocess::{AtariConfig, AtariEnv};
use crate::rom::Rom;
use crate::seed::{self, Stream};
use crate::select::{ActionSelector, Selection};
use crate::stats::ReturnStats;
use crate::Result;

/// How a session plays.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The seed split into the emulator, selector and NoopReset streams.
    pub seed: u64,
    /// Sticky-action probability (0 for the protocol's sticky-off line).
    pub sticky: f32,
    /// Action selection; `None` is the algorithm's default.
    pub selection: Option<Selection>,
    /// Preprocessing and game limits (NoopReset maximum, frame limit, ...).
    pub env: AtariConfig,
}

impl SessionConfig {
    /// The protocol's defaults with this seed and sticky probability.
    pub fn protocol(seed: u64, sticky: f32) -> Self {
        Self {
            seed,
            sticky,
            selection: None,
            env: AtariConfig::default(),
        }
    }
}

/// One finished game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Game {
    /// Raw score.
    pub score: i64,
    /// Emulated frames.
    pub frames: u64,
}

/// What a caller sees of a session while it plays (a window, a recorder, timings). Every
/// method has a default that does nothing.
pub trait Observer {
    /// Each emulated RGB frame `[210, 160, 3]` u8, when the session's `AtariConfig` has
    /// `every_frame_rgb` (game `episode` counted from 1, its `score` so far).
    fn frame(&mut self, _rgb: &[u8], _episode: u32, _score: i64) {}
    /// After every reset and every agent step.
    ///
    /// # Errors
    /// Whatever the observer fails with; the session stops and returns it.
    fn observe(&mut self, _env: &AtariEnv) -> Result<()> {
        Ok(())
    }
    /// Milliseconds of one decision: preprocessing + network + selection, and preprocessing
    /// alone.
    fn decision(&mut self, _decision_ms: f64, _preprocess_ms: f64) {}
    /// Checked after every agent step: `true` ends the session and drops the game in
    /// progress (a closed window).
    ///
    /// # Errors
    /// A failure the observer recorded (a window error); the session returns it.
    fn stop(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// After each finished game.
    fn game_over(&mut self, _episode: u32, _game: &Game) {}
}

/// An observer that watches nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl Observer for Unobserved {}

/// A policy, its environment and its action selector, seeded from one seed.
#[derive(Debug)]
pub struct Session {
    policy: OnnxPolicy,
    env: AtariEnv,
    selector: ActionSelector,
}

impl Session {
    /// Sets `policy` up on `rom` (checking the model against the ROM's minimal action set).
    ///
    /// # Errors
    /// The emulator cannot load the ROM, or the model does not fit it.
    pub fn new(policy: OnnxPolicy, rom: &Rom, cfg: &SessionConfig) -> Result<Self> {
        let emu = Emulator::new(
            rom,
            EmulatorConfig::seeded(seed::stream(cfg.seed, Stream::Emulator), cfg.sticky),
        )?;
        policy.check_against(rom, emu.minimal_action_set())?;
        let selection = cfg
            .selection
            .unwrap_or_else(|| Selection::default_for(policy.info().algo));
        Ok(Self {
            selector: ActionSelector::new(selection, seed::stream(cfg.seed, Stream::Selector)),
            env: AtariEnv::new(
                emu,
                cfg.env.clone(),
                seed::stream(cfg.seed, Stream::NoopReset),
            ),
            policy,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &OnnxPolicy {
        &self.policy
    }

    /// How actions are chosen.
    pub fn selection(&self) -> Selection {
        self.selector.selection()
    }

    /// Plays full games: `episodes` of them, or until the observer stops the session. After
    /// a lost life the game continues through training's reset ([`AtariEnv::reset`] under
    /// EpisodicLife: a no-op step, FireReset, the frame stack refilled) and a recurrent
    /// policy's state is zeroed, at the start of each game too. A game's score is its raw
    /// full-game return.
    ///
    /// # Errors
    /// A failed forward pass, or an observer's error.
    pub fn play(
        &mut self,
        episodes: Option<u32>,
        observer: &mut dyn Observer,
    ) -> Result<Vec<Game>> {
        let mut games = Vec::new();
        let mut episode = 0u32;
        while episodes.is_none_or(|n| episode < n) {
            episode += 1;
            let env = &mut self.env;
            env.reset_observed(&mut |rgb| observer.frame(rgb, episode, 0));
            self.policy.reset_state();
            observer.observe(env)?;
            loop {
                let t0 = Instant::now();
                let decision = self.policy.decide(env.obs())?;
                let action = self.selector.select(&decision.scores);
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let pre = env.last_preprocess_ns() as f64 * 1e-6;
                observer.decision(ms + pre, pre);
                let score = env.episode_return();
                let step =
                    env.step_observed(action, &mut |rgb| observer.frame(rgb, episode, score));
                observer.observe(env)?;
                if observer.stop()? {
                    return Ok(games);
                }
                if step.game_over {
                    break;
                }
                // A lost life ends a learning episode under EpisodicLife: training's reset
                // (the same call) continues the game, and a recurrent policy's state starts
                // from zero, as the rollout zeroes it at every episode start.
                if step.terminated {
                    let score = env.episode_return();
                    env.reset_observed(&mut |rgb| observer.frame(rgb, episode, score));
                    self.policy.reset_state();
                    observer.observe(env)?;
                }
            }
            let game = Game {
                score: env.episode_return(),
                frames: env.episode_frames(),
            };
            observer.game_over(episode, &game);
            games.push(game);
        }
        Ok(games)
    }
}

/// An evaluation's result, as `train` writes it to `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Game name.
    pub game: String,
    /// Games played.
    pub episodes: usize,
    /// Raw score of each game.
    pub returns: Vec<f64>,
    /// Mean score.
    pub mean_return: f64,
    /// Population standard deviation of the scores.
    pub std_return: f64,
    /// Lowest score.
    pub min_return: f64,
    /// Highest score.
    pub max_return: f64,
    /// Sticky-action probability used.
    pub sticky: f32,
    /// The seed (`play --seed` of it replays these games).
    pub seed: u64,
    /// How actions were chosen ([`Selection`]'s `Display`, as `play` prints it).
    pub selection: String,
    /// The protocol in words.
    pub protocol: String,
}

/// Plays `episodes` full games of the ONNX model at `model` on `rom` under the protocol, with
/// one ONNX Runtime thread.
///
/// # Errors
/// The model cannot be loaded or does not fit the ROM, or a forward pass fails.
pub fn evaluate(
    model: &Path,
    rom: &Rom,
    episodes: u32,
    seed: u64,
    sticky: f32,
) -> Result<Evaluation> {
    let policy = OnnxPolicy::load(model, 1, &ModelOverrides::default())?;
    let mut session = Session::new(policy, rom, &SessionConfig::protocol(seed, sticky))?;
    let games = session.play(Some(episodes), &mut Unobserved)?;
    let returns: Vec<f64> = games.iter().map(|g| g.score as f64).collect();
    let stats = ReturnStats::of(&returns);
    Ok(Evaluation {
        game: rom.game.clone(),
        episodes: returns.len(),
        mean_return: stats.mean,
        std_return: stats.std,
        min_return: stats.min,
        max_return: stats.max,
        returns,
        sticky,
        seed,
        selection: session.selection().to_string(),
        protocol: "full games, NoopReset (1..=30 no-ops), max 108000 frames, frame skip 4, \
                   ONNX Runtime on the exported model"
            .into(),
    })
}
