//! The DeepMind / OpenAI-baselines Atari preprocessing, one implementation for training and
//! play. Names follow baselines' `atari_wrappers.py`: NoopReset, FireReset, MaxAndSkip,
//! EpisodicLife, WarpFrame, ClipReward, FrameStack, plus the 108,000-frame time limit.
//!
//! Observation: u8 `[4, 84, 84]`, channel-first, newest frame last (index 3). Each frame is the
//! channel-wise max of the last two RGB frames of a 4-frame skip, converted to gray with
//! OpenCV's `COLOR_RGB2GRAY` and resized 210x160 -> 84x84 with OpenCV's `INTER_AREA`
//! (gray first, then resize, as baselines and SB3 do).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ale::{Emulator, ACTION_FIRE, ACTION_NOOP, RGB_LEN, SCREEN_HEIGHT, SCREEN_WIDTH};

/// What the preprocessing needs from an Atari emulator: [`Emulator`] (ALE) is the one used;
/// the trait lets the wrapper logic be checked on game situations a real ROM cannot be put in
/// on demand (a game ending during FireReset).
pub trait Console {
    /// The game's minimal action set (ALE action ids).
    fn minimal_action_set(&self) -> &[i32];
    /// Starts a new game.
    fn reset(&mut self);
    /// Emulates one frame with ALE action id `action`; returns its reward.
    fn act(&mut self, action: i32) -> i32;
    /// Remaining lives.
    fn lives(&self) -> i32;
    /// Whether the game has ended.
    fn game_over(&self) -> bool;
    /// Writes the screen, `[210, 160, 3]` u8, into `out`.
    fn screen_rgb(&self, out: &mut [u8]);
}

impl Console for Emulator {
    fn minimal_action_set(&self) -> &[i32] {
        Emulator::minimal_action_set(self)
    }
    fn reset(&mut self) {
        Emulator::reset(self);
    }
    fn act(&mut self, action: i32) -> i32 {
        Emulator::act(self, action)
    }
    fn lives(&self) -> i32 {
        Emulator::lives(self)
    }
    fn game_over(&self) -> bool {
        Emulator::game_over(self)
    }
    fn screen_rgb(&self, out: &mut [u8]) {
        Emulator::screen_rgb(self, out);
    }
}

/// Side of a warped frame (the contract's 84x84).
pub const FRAME_SIZE: usize = cartridge_contract::FRAME_HEIGHT;
const _: () = assert!(
    cartridge_contract::FRAME_WIDTH == FRAME_SIZE,
    "square frames"
);
/// Bytes of one warped frame, `[84, 84]` u8.
pub use cartridge_contract::FRAME_LEN;
/// Default number of stacked frames.
pub use cartridge_contract::FRAME_STACK as STACK;
/// Bytes of one observation, `[4, 84, 84]` u8.
pub use cartridge_contract::OBS_LEN;

/// OpenCV `RGB2GRAY` for 8-bit images: weights 0.299, 0.587, 0.114 in 15-bit fixed point
/// (`imgproc/src/color_rgb.simd.hpp`, `RGB2Gray<uchar>`: 9798, 19235, 3735, summing to 2^15),
/// rounded by adding 2^14 before the shift. Checked equal to `cv2.cvtColor` of
/// opencv-python-headless 4.12 on every pixel of random images (tests/tests/preprocess_opencv.rs).
#[inline]
pub fn gray_pixel(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 9798 + g as u32 * 19235 + b as u32 * 3735 + (1 << 14)) >> 15) as u8
}

/// RGB `[h, w, 3]` -> gray `[h, w]` with [`gray_pixel`]. Panics if `gray.len() * 3 != rgb.len()`.
pub fn rgb_to_gray(rgb: &[u8], gray: &mut [u8]) {
    assert_eq!(rgb.len(), gray.len() * 3);
    for (px, g) in rgb.chunks_exact(3).zip(gray.iter_mut()) {
        *g = gray_pixel(px[0], px[1], px[2]);
    }
}

/// Channel-wise maximum of two equally long buffers (MaxAndSkip's pooling of the last two
/// frames, which removes Atari sprite flicker).
pub fn max_pool(a: &[u8], b: &[u8], out: &mut [u8]) {
    assert!(a.len() == b.len() && a.len() == out.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x.max(y);
    }
}

/// Weights of one axis of OpenCV's `INTER_AREA` downscale (`computeResizeAreaTab` in
/// `imgproc/src/resize.cpp`): for each destination index, the source indices it covers and
/// the fraction of the destination cell each covers (summing to 1), in increasing source
/// order (OpenCV's summation order, which decides rounding ties).
#[derive(Debug, Clone)]
struct AreaAxis {
    /// Taps of destination `d` are `taps[starts[d]..starts[d + 1]]`.
    starts: Vec<usize>,
    /// `(src, weight)`.
    taps: Vec<(usize, f32)>,
}

impl AreaAxis {
    fn new(src: usize, dst: usize) -> Self {
        // Computed as OpenCV does (`scale = 1 / inv_scale`, `inv_scale = dst / src`): the last
        // bits decide the cell edges.
        let scale = 1.0 / (dst as f64 / src as f64);
        let mut starts = vec![0];
        let mut taps = Vec::new();
        for d in 0..dst {
            let fs1 = d as f64 * scale;
            let fs2 = fs1 + scale;
            let cell = scale.min(src as f64 - fs1);
            let mut s1 = fs1.ceil() as usize;
            let s2 = (fs2.floor() as usize).min(src - 1);
            s1 = s1.min(s2);
            if s1 as f64 - fs1 > 1e-3 {
                taps.push((s1 - 1, ((s1 as f64 - fs1) / cell) as f32));
            }
            for s in s1..s2 {
                taps.push((s, (1.0 / cell) as f32));
            }
            if fs2 - s2 as f64 > 1e-3 {
                taps.push((s2, ((fs2 - s2 as f64).min(1.0).min(cell) / cell) as f32));
            }
            starts.push(taps.len());
        }
        Self { starts, taps }
    }

    fn taps_of(&self, d: usize) -> &[(usize, f32)] {
        &self.taps[self.starts[d]..self.starts[d + 1]]
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }
}

/// Round half to even for `0 <= x < 2^22` without SSE4.1's `roundss`: adding and removing
/// 2^23 leaves the float unit's default round-to-nearest-even rounding.
#[inline]
fn round_half_even(x: f32) -> f32 {
    const MAGIC: f32 = 8_388_608.0;
    (x + MAGIC) - MAGIC
}

/// WarpFrame's resize: gray `[src_h, src_w]` -> `[dst_h, dst_w]` with OpenCV `INTER_AREA`
/// semantics (area-weighted mean, rounded half to even as `saturate_cast<uchar>`). Tables and
/// the scratch buffer are built once.
#[derive(Debug, Clone)]
pub struct AreaResize {
    src_h: usize,
    src_w: usize,
    xs: AreaAxis,
    ys: AreaAxis,
    /// `xs` padded to [`X_TAPS`] taps per destination column, when every column fits.
    xfixed: Vec<([u16; X_TAPS], [f32; X_TAPS])>,
    /// Horizontally resized source rows, `[src_h, dst_w]`.
    rows: Vec<f32>,
}

/// Horizontal taps per destination pixel after padding; 160 -> 84 needs at most 3.
const X_TAPS: usize = 3;

impl AreaResize {
    /// A resize from `src_h x src_w` to `dst_h x dst_w` (a downscale on both axes).
    pub fn new(src_h: usize, src_w: usize, dst_h: usize, dst_w: usize) -> Self {
        assert!(
            dst_h <= src_h && dst_w <= src_w,
            "INTER_AREA here only downscales"
        );
        assert!(
            src_w <= 512 && dst_w <= 256,
            "row buffers hold 512 source, 256 output pixels"
        );
        let xs = AreaAxis::new(src_w, dst_w);
        let xfixed = (0..dst_w)
            .map(|d| {
                let taps = xs.taps_of(d);
                assert!(
                    taps.len() <= X_TAPS,
                    "more than {X_TAPS} taps: scale too large"
                );
                let mut idx = [taps[0].0 as u16; X_TAPS];
                let mut w = [0f32; X_TAPS];
                for (k, &(sx, wx)) in taps.iter().enumerate() {
                    idx[k] = sx as u16;
                    w[k] = wx;
                }
                (idx, w)
            })
            .collect();
        Self {
            src_h,
            src_w,
            xfixed,
            xs,
            ys: AreaAxis::new(src_h, dst_h),
            rows: vec![0.0; src_h * dst_w],
        }
    }

    /// The Atari WarpFrame resize, 210x160 -> 84x84.
    pub fn atari() -> Self {
        Self::new(SCREEN_HEIGHT, SCREEN_WIDTH, FRAME_SIZE, FRAME_SIZE)
    }

    /// Resizes `src` (`[src_h, src_w]`) into `dst` (`[dst_h, dst_w]`); panics on wrong lengths.
    pub fn apply(&mut self, src: &[u8], dst: &mut [u8]) {
        let (dst_w, dst_h) = (self.xs.len(), self.ys.len());
        assert_eq!(src.len(), self.src_h * self.src_w);
        assert_eq!(dst.len(), dst_h * dst_w);
        // Horizontal pass, once per source row (OpenCV sums the same products per row).
        // Taps are padded to a fixed count with weight 0, which leaves each sum unchanged.
        let mut srcf = [0f32; 512];
        let srcf = &mut srcf[..self.src_w];
        for (src_row, out) in src
            .chunks_exact(self.src_w)
            .zip(self.rows.chunks_exact_mut(dst_w))
        {
            for (f, &v) in srcf.iter_mut().zip(src_row) {
                *f = v as f32;
            }
            for (o, (idx, w)) in out.iter_mut().zip(&self.xfixed) {
                let mut acc = 0.0f32;
                for k in 0..X_TAPS {
                    acc += srcf[idx[k] as usize] * w[k];
                }
                *o = acc;
            }
        }
        // Vertical pass over the resized rows, in OpenCV's order.
        let mut acc = [0f32; 256];
        let acc = &mut acc[..dst_w];
        for (dy, out) in dst.chunks_exact_mut(dst_w).enumerate() {
            acc.fill(0.0);
            for &(sy, wy) in self.ys.taps_of(dy) {
                let row = &self.rows[sy * dst_w..(sy + 1) * dst_w];
                for (a, r) in acc.iter_mut().zip(row) {
                    *a += r * wy;
                }
            }
            for (o, a) in out.iter_mut().zip(acc.iter()) {
                *o = round_half_even(a.clamp(0.0, 255.0)) as u8;
            }
        }
    }
}

/// FrameStack: the last `k` frames, channel-first, newest last; `[k, 84, 84]` u8 contiguous.
#[derive(Debug, Clone)]
pub struct FrameStack {
    k: usize,
    buf: Vec<u8>,
}

impl FrameStack {
    /// An all-zero stack of `k` frames.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            buf: vec![0; k * FRAME_LEN],
        }
    }

    /// Fills every slot with `frame` (on reset, as baselines' `FrameStack.reset`).
    pub fn reset(&mut self, frame: &[u8]) {
        for slot in self.buf.chunks_exact_mut(FRAME_LEN) {
            slot.copy_from_slice(frame);
        }
    }

    /// Drops the oldest frame and appends `frame` as the newest.
    pub fn push(&mut self, frame: &[u8]) {
        self.buf.copy_within(FRAME_LEN.., 0);
        let n = self.buf.len();
        self.buf[n - FRAME_LEN..].copy_from_slice(frame);
    }

    /// The stacked observation, `[k, 84, 84]` u8.
    pub fn obs(&self) -> &[u8] {
        &self.buf
    }

    /// Number of frames stacked.
    pub fn len(&self) -> usize {
        self.k
    }

    /// Always false: a stack holds at least one frame.
    pub fn is_empty(&self) -> bool {
        self.k == 0
    }
}

/// Preprocessing settings. Defaults are the DeepMind/baselines evaluation settings for play
/// (full games, no reward clipping).
#[derive(Debug, Clone, PartialEq)]
pub struct AtariConfig {
    /// NoopReset: up to this many no-op emulated frames after a reset (uniform in `1..=noop_max`;
    /// 0 disables). baselines: 30.
    pub noop_max: u32,
    /// MaxAndSkip: emulated frames per agent step. baselines: 4.
    pub frame_skip: u32,
    /// EpisodicLife: a lost life ends the learning episode (`terminated`), not the game; the
    /// caller then calls [`AtariEnv::reset`], which continues the game with training's
    /// life-start sequence (a no-op step, FireReset, the frame stack refilled). Training and
    /// play's sessions both do, so an agent is evaluated on the observations it trained on, as
    /// CleanRL and SB3 evaluate through their training wrappers. Off, a game is one episode
    /// with no reset at a lost life (and a game that needs FIRE to relaunch waits).
    pub episodic_life: bool,
    /// ClipReward (training only): rewards become their sign.
    pub clip_reward: bool,
    /// Time limit in emulated frames, reported as truncation. baselines / gym: 108,000.
    pub max_episode_frames: u64,
    /// Read the RGB screen of every emulated frame (for a window); otherwise only the last two
    /// frames of each skip are read.
    pub every_frame_rgb: bool,
}

impl Default for AtariConfig {
    fn default() -> Self {
        Self {
            noop_max: 30,
            frame_skip: 4,
            episodic_life: true,
            clip_reward: false,
            max_episode_frames: 108_000,
            every_frame_rgb: false,
        }
    }
}

/// The outcome of one agent step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Reward for learning: the raw reward, or its sign under ClipReward.
    pub reward: f32,
    /// Raw game score gained this step (sum over the skipped frames), as `episode_return`
    /// counts it.
    pub raw_reward: i32,
    /// The (learning) episode ended: game over, or a lost life under EpisodicLife.
    pub terminated: bool,
    /// The time limit ended the episode (bootstrap from it when learning).
    pub truncated: bool,
    /// The game itself is over (or truncated): the next [`AtariEnv::reset`] starts a new game.
    pub game_over: bool,
    /// A life was lost and the game goes on (under EpisodicLife, `terminated` too).
    pub life_lost: bool,
}

/// An Atari game behind the preprocessing stack; the caller picks an action index into the
/// minimal action set each agent step and reads the stacked observation.
#[derive(Debug)]
pub struct AtariEnv<E: Console = Emulator> {
    emu: E,
    cfg: AtariConfig,
    rng: ChaCha8Rng,
    resize: AreaResize,
    stack: FrameStack,
    rgb: [Vec<u8>; 2],
    pooled: Vec<u8>,
    gray: Vec<u8>,
    frame: Vec<u8>,
    fire_index: Option<usize>,
    lives: i32,
    real_done: bool,
    episode_return: i64,
    episode_frames: u64,
    preprocess_ns: u64,
}

impl<E: Console> AtariEnv<E> {
    /// Wraps an emulator; `seed` drives NoopReset (the emulator has its own seed).
    pub fn new(emu: E, cfg: AtariConfig, seed: u64) -> Self {
        let fire_index = emu
            .minimal_action_set()
            .iter()
            .position(|&a| a == ACTION_FIRE)
            .filter(|_| emu.minimal_action_set().len() >= 3);
        Self {
            // The depth is the model contract's (4, as baselines), not a setting: every
            // consumer of an observation assumes it.
            stack: FrameStack::new(STACK),
            emu,
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
            resize: AreaResize::atari(),
            rgb: [vec![0; RGB_LEN], vec![0; RGB_LEN]],
            pooled: vec![0; RGB_LEN],
            gray: vec![0; SCREEN_HEIGHT * SCREEN_WIDTH],
            frame: vec![0; FRAME_LEN],
            fire_index,
            lives: 0,
            real_done: true,
            episode_return: 0,
            episode_frames: 0,
            preprocess_ns: 0,
        }
    }

    /// The emulator underneath.
    pub fn emulator(&self) -> &E {
        &self.emu
    }

    /// Number of actions (the minimal action set).
    pub fn num_actions(&self) -> usize {
        self.emu.minimal_action_set().len()
    }

    /// The stacked observation `[4, 84, 84]` u8.
    pub fn obs(&self) -> &[u8] {
        self.stack.obs()
    }

    /// The last max-pooled RGB frame, `[210, 160, 3]` u8: what the agent's newest frame was
    /// made from.
    pub fn pooled_rgb(&self) -> &[u8] {
        &self.pooled
    }

    /// Raw score of the current game so far.
    pub fn episode_return(&self) -> i64 {
        self.episode_return
    }

    /// Emulated frames of the current game so far.
    pub fn episode_frames(&self) -> u64 {
        self.episode_frames
    }

    /// Nanoseconds spent in MaxAndSkip pooling, WarpFrame and FrameStack in the last step.
    pub fn last_preprocess_ns(&self) -> u64 {
        self.preprocess_ns
    }

    /// Starts a learning episode: a new game (NoopReset, FireReset) after a game over, or,
    /// under EpisodicLife after a lost life, one no-op step in the same game. Fills the frame
    /// stack with the first observation.
    pub fn reset(&mut self) {
        self.reset_observed(&mut |_| {});
    }

    /// [`Self::reset`], calling `on_frame` with each emulated frame's RGB when
    /// `every_frame_rgb` is set.
    pub fn reset_observed(&mut self, on_frame: &mut dyn FnMut(&[u8])) {
        // A game that ends inside this sequence (its last life lost during the no-op or
        // FireReset) is replaced by a new game with its own NoopReset and zeroed counters; the
        // bound only guards against a ROM that ends every game at once.
        for _ in 0..100 {
            if self.real_done {
                self.new_game(on_frame);
            } else {
                // EpisodicLife after a lost life: one no-op step in the same game.
                self.skip(ACTION_NOOP, on_frame);
            }
            // FireReset wraps EpisodicLife in baselines' `wrap_deepmind`, so it runs at every
            // learning-episode start: FIRE, then action index 2.
            if let Some(fire) = self.fire_index {
                self.skip(self.emu.minimal_action_set()[fire], on_frame);
                let second = self.emu.minimal_action_set()[2];
                self.skip(second, on_frame);
            }
            self.real_done = self.emu.game_over();
            if !self.real_done {
                break;
            }
        }
        self.lives = self.emu.lives();
        self.real_done = false;
        self.stack.reset(&self.frame);
    }

    /// A new game: emulator reset, counters zeroed, NoopReset (`1..=noop_max` no-ops of one
    /// emulated frame each; a game that ends during them is reset again). baselines' and
    /// CleanRL's `NoopResetEnv` wraps the unskipped `NoFrameskip` environment inside
    /// `MaxAndSkipEnv`, so each of its no-ops is one frame, and the observation after them is
    /// the last frame, not max-pooled.
    fn new_game(&mut self, on_frame: &mut dyn FnMut(&[u8])) {
        self.emu.reset();
        self.episode_return = 0;
        self.episode_frames = 0;
        let noops = if self.cfg.noop_max > 0 {
            self.rng.random_range(1..=self.cfg.noop_max)
        } else {
            0
        };
        for _ in 0..noops {
            self.repeat(ACTION_NOOP, 1, on_frame);
            if self.emu.game_over() {
                self.emu.reset();
                self.episode_return = 0;
                self.episode_frames = 0;
            }
        }
    }

    /// One agent step with action index `action` (into the minimal action set; out-of-range
    /// indices panic, as they are a caller bug).
    pub fn step(&mut self, action: usize) -> Step {
        self.step_observed(action, &mut |_| {})
    }

    /// [`Self::step`], calling `on_frame` with each emulated frame's RGB when
    /// `every_frame_rgb` is set.
    pub fn step_observed(&mut self, action: usize, on_frame: &mut dyn FnMut(&[u8])) -> Step {
        let ale_action = self.emu.minimal_action_set()[action];
        let raw_reward = self.skip(ale_action, on_frame);
        let t0 = std::time::Instant::now();
        self.stack.push(&self.frame);
        self.preprocess_ns += t0.elapsed().as_nanos() as u64;

        let game_over = self.emu.game_over();
        let truncated = !game_over && self.episode_frames >= self.cfg.max_episode_frames;
        let lives = self.emu.lives();
        let lost_life = lives < self.lives && lives > 0;
        self.lives = lives;
        self.real_done = game_over || truncated;
        let terminated = game_over || (lost_life && self.cfg.episodic_life);
        let reward = if self.cfg.clip_reward {
            (raw_reward.signum()) as f32
        } else {
            raw_reward as f32
        };
        Step {
            reward,
            raw_reward,
            terminated,
            truncated,
            game_over: self.real_done,
            life_lost: lost_life && !game_over,
        }
    }

    /// MaxAndSkip: repeats `ale_action` for `frame_skip` frames (fewer if the game ends), sums
    /// the reward, max-pools the last two RGB frames and warps the result into `self.frame`.
    fn skip(&mut self, ale_action: i32, on_frame: &mut dyn FnMut(&[u8])) -> i32 {
        self.repeat(ale_action, self.cfg.frame_skip.max(1) as usize, on_frame)
    }

    /// Repeats `ale_action` for `skip` frames (fewer if the game ends), sums the reward,
    /// max-pools the last two RGB frames (the only one when `skip` is 1) and warps the result
    /// into `self.frame`.
    fn repeat(&mut self, ale_action: i32, skip: usize, on_frame: &mut dyn FnMut(&[u8])) -> i32 {
        let mut total = 0;
        let mut last = 0usize;
        let mut read = 0usize;
        for i in 0..skip {
            total += self.emu.act(ale_action);
            self.episode_frames += 1;
            let done = self.emu.game_over();
            if self.cfg.every_frame_rgb || i + 2 >= skip || done {
                last = i % 2;
                self.emu.screen_rgb(&mut self.rgb[last]);
                read += 1;
                if self.cfg.every_frame_rgb {
                    on_frame(&self.rgb[last]);
                }
            }
            if done {
                break;
            }
        }
        self.episode_return += total as i64;
        let t0 = std::time::Instant::now();
        if read >= 2 {
            let [a, b] = &self.rgb;
            max_pool(a, b, &mut self.pooled);
        } else {
            self.pooled.copy_from_slice(&self.rgb[last]);
        }
        rgb_to_gray(&self.pooled, &mut self.gray);
        self.resize.apply(&self.gray, &mut self.frame);
        self.preprocess_ns = t0.elapsed().as_nanos() as u64;
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted console: Breakout's action set, 2 lives, reward 1 per emulated frame; game `g`
    /// (counted from 0 by resets) loses a life at each frame (since its reset) in
    /// `deaths[g]`; the game is over when no life is left, and then frames do nothing.
    #[derive(Debug)]
    struct Scripted {
        deaths: Vec<Vec<u64>>,
        game: usize,
        frame: u64,
        lives: i32,
        resets: usize,
    }

    impl Scripted {
        fn new(deaths: Vec<Vec<u64>>) -> Self {
            Self {
                deaths,
                game: 0,
                frame: 0,
                lives: 2,
                resets: 0,
            }
        }
    }

    impl Console for Scripted {
        fn minimal_action_set(&self) -> &[i32] {
            &[0, 1, 3, 4]
        }
        fn reset(&mut self) {
            if self.resets > 0 {
                self.game += 1;
            }
            self.resets += 1;
            (self.frame, self.lives) = (0, 2);
        }
        fn act(&mut self, _action: i32) -> i32 {
            if self.lives == 0 {
                return 0;
            }
            self.frame += 1;
            if self
                .deaths
                .get(self.game)
                .is_some_and(|d| d.contains(&self.frame))
            {
                self.lives -= 1;
            }
            1
        }
        fn lives(&self) -> i32 {
            self.lives
        }
        fn game_over(&self) -> bool {
            self.lives == 0
        }
        fn screen_rgb(&self, out: &mut [u8]) {
            out.fill(0);
        }
    }

    /// A console without FIRE (NOOP, UP, RIGHT) that never ends a game and counts frames.
    #[derive(Debug, Default)]
    struct Frames(u64);

    impl Console for Frames {
        fn minimal_action_set(&self) -> &[i32] {
            &[0, 2, 3]
        }
        fn reset(&mut self) {
            self.0 = 0;
        }
        fn act(&mut self, _action: i32) -> i32 {
            self.0 += 1;
            0
        }
        fn lives(&self) -> i32 {
            3
        }
        fn game_over(&self) -> bool {
            false
        }
        fn screen_rgb(&self, out: &mut [u8]) {
            out.fill(0);
        }
    }

    #[test]
    fn noop_reset_takes_1_to_30_single_frames() {
        // baselines' NoopResetEnv sits inside MaxAndSkipEnv: its no-ops are single frames, so
        // a reset without FIRE takes 1..=30 frames (4-frame no-ops would give 4, 8, ..., 120).
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut env = AtariEnv::new(Frames::default(), AtariConfig::default(), seed);
            env.reset();
            assert_eq!(env.episode_frames(), env.emulator().0);
            seen.insert(env.episode_frames());
        }
        assert_eq!(
            seen,
            (1..=30).collect(),
            "every count of 1..=30 no-op frames"
        );
    }

    #[test]
    fn a_game_ending_during_fire_reset_starts_a_new_game() {
        // Training wrappers, NoopReset fixed at 1 no-op: a reset is NOOP (one frame), FIRE,
        // RIGHT (4 frames each) = 9 frames. Game 0 loses a life at frame 13 (the first agent
        // step, frames 10-13) and its last life at frame 19, inside the FireReset of the next
        // learning episode (EpisodicLife's NOOP step 14-17, FIRE 18-19).
        let cfg = AtariConfig {
            noop_max: 1,
            episodic_life: true,
            clip_reward: true,
            ..AtariConfig::default()
        };
        let mut env = AtariEnv::new(Scripted::new(vec![vec![13, 19]]), cfg, 1);
        env.reset();
        assert_eq!((env.episode_frames(), env.episode_return()), (9, 9));
        let s = env.step(1);
        assert!(s.terminated && !s.game_over, "{s:?}");
        env.reset();
        // A new game: reset again, with its NoopReset and FireReset, counters from zero.
        assert_eq!(env.emulator().resets, 2);
        assert_eq!(env.emulator().lives, 2);
        assert_eq!((env.episode_frames(), env.episode_return()), (9, 9));
    }

    #[test]
    fn play_continues_a_game_after_a_lost_life_through_trainings_reset() {
        // Play's defaults (EpisodicLife, raw rewards), NoopReset fixed at 1 no-op: a game's
        // reset is NOOP (one frame), FIRE, RIGHT (4 frames each) = 9 frames. The first step
        // (frames 10-13) loses a life at frame 13: it ends the learning episode, not the game,
        // and the reset after it is training's: a NOOP step, FIRE, RIGHT (frames 14-25) in the
        // same game. The return counts every frame's point of the whole game (1 a frame here):
        // 9 + 4 + 12 + 4 (frames 26-29) + 1 (frame 30, the game's end) = 30.
        let cfg = AtariConfig {
            noop_max: 1,
            ..AtariConfig::default()
        };
        let mut env = AtariEnv::new(Scripted::new(vec![vec![13, 30]]), cfg, 1);
        env.reset();
        let s = env.step(2);
        assert!(s.terminated && s.life_lost && !s.game_over, "{s:?}");
        assert_eq!((s.raw_reward, env.episode_return()), (4, 13));
        env.reset();
        assert_eq!(env.emulator().resets, 1, "the same game");
        assert_eq!((env.episode_frames(), env.episode_return()), (25, 25));
        let newest = &env.obs()[3 * FRAME_LEN..];
        for k in 0..3 {
            assert_eq!(
                &env.obs()[k * FRAME_LEN..(k + 1) * FRAME_LEN],
                newest,
                "the stack is refilled with the new frame"
            );
        }
        assert!(!env.step(2).terminated);
        let s = env.step(2);
        assert!(s.game_over && s.terminated, "{s:?}");
        assert_eq!((env.episode_frames(), env.episode_return()), (30, 30));
    }

    #[test]
    fn gray_weights_and_rounding() {
        // Hand-computed with OpenCV's weights (9798, 19235, 3735) / 2^15, +2^14 to round:
        assert_eq!(gray_pixel(0, 0, 0), 0);
        assert_eq!(gray_pixel(255, 255, 255), 255); // (255*32768 + 16384) >> 15 = 255
        assert_eq!(gray_pixel(255, 0, 0), 76); // 2498490+16384 = 2514874 >> 15 = 76 (0.299*255 = 76.2)
        assert_eq!(gray_pixel(0, 255, 0), 150); // 4904925+16384 = 4921309 >> 15 = 150 (0.587*255 = 149.7)
        assert_eq!(gray_pixel(0, 0, 255), 29); // 952425+16384 = 968809 >> 15 = 29 (0.114*255 = 29.07)
                                               // Breakout's red brick (200, 72, 72): 1959600+1384920+268920+16384 = 3629824 >> 15 = 110.
        assert_eq!(gray_pixel(200, 72, 72), 110);
        // Rounding up: 9798+4135525+16384 = 4161707 >> 15 = 127 (127.006); a 14-bit table
        // (4899, 9617, 1868) would give 126 here, which is not what cv2 returns.
        assert_eq!(gray_pixel(1, 215, 0), 127);
        let mut g = [0u8; 2];
        rgb_to_gray(&[255, 0, 0, 0, 255, 0], &mut g);
        assert_eq!(g, [76, 150]);
    }

    #[test]
    fn area_resize_integer_factor_is_block_mean() {
        // 4x4 -> 2x2: each output is the mean of a 2x2 block.
        #[rustfmt::skip]
        let src = [
            0, 10, 100, 100,
            20, 30, 100, 102,
            5, 5, 255, 255,
            5, 6, 255, 254,
        ];
        let mut dst = [0u8; 4];
        AreaResize::new(4, 4, 2, 2).apply(&src, &mut dst);
        // (0+10+20+30)/4 = 15; (100+100+100+102)/4 = 100.5 -> 100 (ties to even, as cvRound);
        // (5+5+5+6)/4 = 5.25 -> 5; (255*3+254)/4 = 254.75 -> 255.
        assert_eq!(dst, [15, 100, 5, 255]);
    }

    #[test]
    fn area_resize_fractional_factor() {
        // 1x5 -> 1x2: scale 2.5. Cell 0 covers src 0, 1 fully and half of 2: weights 0.4, 0.4, 0.2.
        // Cell 1 covers half of 2 and 3, 4 fully: weights 0.2, 0.4, 0.4.
        let src = [10, 20, 30, 40, 50];
        let mut dst = [0u8; 2];
        AreaResize::new(1, 5, 1, 2).apply(&src, &mut dst);
        // 0.4*10 + 0.4*20 + 0.2*30 = 18; 0.2*30 + 0.4*40 + 0.4*50 = 42.
        assert_eq!(dst, [18, 42]);
    }

    #[test]
    fn atari_resize_of_constant_image_is_constant() {
        let src = vec![77u8; SCREEN_HEIGHT * SCREEN_WIDTH];
        let mut dst = vec![0u8; FRAME_LEN];
        AreaResize::atari().apply(&src, &mut dst);
        assert!(dst.iter().all(|&v| v == 77));
    }

    #[test]
    fn atari_resize_axis_weights() {
        // 210 -> 84 rows: scale 2.5, so row 0 takes src rows 0, 1 (0.4 each) and half of 2 (0.2).
        let ys = AreaAxis::new(210, 84);
        let row0 = ys.taps_of(0);
        assert_eq!(row0.len(), 3);
        assert_eq!((row0[0].0, row0[1].0, row0[2].0), (0, 1, 2));
        assert!((row0[0].1 - 0.4).abs() < 1e-6 && (row0[2].1 - 0.2).abs() < 1e-6);
        // Weights of every destination cell sum to 1.
        for axis in [ys, AreaAxis::new(160, 84)] {
            for d in 0..84 {
                let sum: f32 = axis.taps_of(d).iter().map(|t| t.1).sum();
                assert!((sum - 1.0).abs() < 1e-5, "cell {d}: {sum}");
            }
        }
    }

    #[test]
    fn round_half_even_matches_opencv_cvround() {
        assert_eq!(round_half_even(100.5), 100.0);
        assert_eq!(round_half_even(101.5), 102.0);
        assert_eq!(round_half_even(254.75), 255.0);
        assert_eq!(round_half_even(0.49), 0.0);
    }

    #[test]
    fn max_pool_is_channelwise() {
        let mut out = [0u8; 6];
        max_pool(&[1, 200, 3, 0, 0, 9], &[5, 100, 3, 7, 0, 8], &mut out);
        assert_eq!(out, [5, 200, 3, 7, 0, 9]);
    }

    #[test]
    fn frame_stack_order_and_reset_fill() {
        let f = |v: u8| vec![v; FRAME_LEN];
        let mut s = FrameStack::new(4);
        s.reset(&f(1));
        assert!(s.obs().iter().all(|&v| v == 1));
        s.push(&f(2));
        s.push(&f(3));
        // Oldest first, newest last: [1, 1, 2, 3].
        let firsts: Vec<u8> = s.obs().chunks(FRAME_LEN).map(|c| c[0]).collect();
        assert_eq!(firsts, [1, 1, 2, 3]);
        s.push(&f(4));
        s.push(&f(5));
        let firsts: Vec<u8> = s.obs().chunks(FRAME_LEN).map(|c| c[0]).collect();
        assert_eq!(firsts, [2, 3, 4, 5]);
        assert_eq!(s.obs().len(), OBS_LEN);
    }
}
