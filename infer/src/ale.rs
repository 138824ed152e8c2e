//! Safe wrapper over the Arcade Learning Environment 0.6.0 (Stella core) that the crate
//! `atari-env-sys` builds without SDL.
//!
//! One [`Emulator`] per thread: the type is `Send` (it owns its `ALEInterface`) but not `Sync`.
//! ALE's own frame skipping and colour averaging stay off; frame skipping and max-pooling are
//! Cartridge's (`MaxAndSkip` in [`crate::preprocess`]).

use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::NonNull;

use atari_env_sys as sys;

use crate::rom::Rom;
use crate::{Error, Result};

/// Atari 2600 screen height in pixels.
pub const SCREEN_HEIGHT: usize = 210;
/// Atari 2600 screen width in pixels.
pub const SCREEN_WIDTH: usize = 160;
/// Bytes of one RGB screen, `[210, 160, 3]` u8, R, G, B order.
pub const RGB_LEN: usize = SCREEN_HEIGHT * SCREEN_WIDTH * 3;

/// ALE action id of NOOP.
pub const ACTION_NOOP: i32 = 0;
/// ALE action id of FIRE.
pub const ACTION_FIRE: i32 = 1;

/// Emulator settings applied before the ROM is loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmulatorConfig {
    /// ALE's `random_seed`. Must be non-zero: ALE reads 0 as "seed from the clock".
    pub seed: u32,
    /// Sticky-action probability `repeat_action_probability` in `[0, 1)`; 0.0 gives
    /// `NoFrameskip-v4` semantics, 0.25 the Machado et al. (2018) protocol.
    pub sticky: f32,
}

impl EmulatorConfig {
    /// Settings from any u64 seed (mapped to a valid ALE seed by [`crate::seed::ale`]).
    pub fn seeded(seed: u64, sticky: f32) -> Self {
        Self {
            seed: crate::seed::ale(seed),
            sticky,
        }
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            sticky: 0.0,
        }
    }
}

/// One Atari console running one ROM.
#[derive(Debug)]
pub struct Emulator {
    ale: NonNull<sys::ALEInterface>,
    minimal_actions: Vec<i32>,
    game: String,
    // Keeps the file name ALE needs alive (ALE picks game settings from the file name).
    _rom_link: Option<tempfile::TempDir>,
}

// SAFETY: the ALEInterface is owned exclusively by this value and ALE keeps no thread-local
// state; moving it to another thread is sound. It is not `Sync`: no `&self` method may race.
unsafe impl Send for Emulator {}

impl Emulator {
    /// Loads a validated ROM. Fails with [`Error::InvalidConfig`] for a seed of 0 or a sticky
    /// probability outside `[0, 1)`.
    pub fn new(rom: &Rom, config: EmulatorConfig) -> Result<Self> {
        if config.seed == 0 {
            return Err(Error::InvalidConfig(
                "emulator seed 0 means \"seed from the clock\" to ALE; pass a non-zero seed".into(),
            ));
        }
        if !(0.0..1.0).contains(&config.sticky) {
            return Err(Error::InvalidConfig(format!(
                "sticky-action probability must be in [0, 1), got {}",
                config.sticky
            )));
        }
        let (ale_path, link) = rom.path_for_ale()?;
        let c_path = path_cstring(&ale_path)?;
        // SAFETY: plain FFI calls on a freshly created, exclusively owned ALEInterface; all
        // strings are NUL-terminated and outlive the calls.
        unsafe {
            sys::setLoggerMode(2);
            let ale = NonNull::new(sys::ALE_new())
                .ok_or_else(|| Error::Emulator("ALE_new returned null".into()))?;
            let set_int = |k: &str, v: i32| {
                let k = CString::new(k).expect("static key");
                sys::setInt(ale.as_ptr(), k.as_ptr(), v);
            };
            // ALE reads random_seed as a signed int; keep it positive.
            set_int("random_seed", (config.seed & 0x7fff_ffff).max(1) as i32);
            set_int("frame_skip", 1);
            let k = CString::new("repeat_action_probability").expect("static key");
            sys::setFloat(ale.as_ptr(), k.as_ptr(), config.sticky);
            let k = CString::new("color_averaging").expect("static key");
            sys::setBool(ale.as_ptr(), k.as_ptr(), false);
            sys::loadROM(ale.as_ptr(), c_path.as_ptr());
            let n = sys::getMinimalActionSize(ale.as_ptr());
            let mut minimal_actions = vec![0i32; n.max(0) as usize];
            sys::getMinimalActionSet(ale.as_ptr(), minimal_actions.as_mut_ptr());
            let w = sys::getScreenWidth(ale.as_ptr()) as usize;
            let h = sys::getScreenHeight(ale.as_ptr()) as usize;
            let emu = Self {
                ale,
                minimal_actions,
                game: rom.game.clone(),
                _rom_link: link,
            };
            if (w, h) != (SCREEN_WIDTH, SCREEN_HEIGHT) {
                return Err(Error::Emulator(format!(
                    "unexpected screen size {w}x{h} (expected {SCREEN_WIDTH}x{SCREEN_HEIGHT})"
                )));
            }
            Ok(emu)
        }
    }

    /// The game name (ALE's ROM name, e.g. `breakout`).
    pub fn game(&self) -> &str {
        &self.game
    }

    /// The game's minimal action set as ALE action ids; a policy's action index `i` means
    /// `minimal_action_set()[i]`.
    pub fn minimal_action_set(&self) -> &[i32] {
        &self.minimal_actions
    }

    /// Resets the game (ALE `reset_game`).
    pub fn reset(&mut self) {
        // SAFETY: exclusive access to a live ALEInterface.
        unsafe { sys::reset_game(self.ale.as_ptr()) }
    }

    /// Emulates one frame with ALE action id `action` (0..=17) and returns the frame's reward.
    pub fn act(&mut self, action: i32) -> i32 {
        // SAFETY: exclusive access to a live ALEInterface; ALE maps out-of-range ids itself.
        unsafe { sys::act(self.ale.as_ptr(), action) }
    }

    /// Remaining lives as reported by the game's ROM settings.
    pub fn lives(&self) -> i32 {
        // SAFETY: read-only query on a live ALEInterface.
        unsafe { sys::lives(self.ale.as_ptr()) }
    }

    /// Whether the game has ended.
    pub fn game_over(&self) -> bool {
        // SAFETY: read-only query on a live ALEInterface.
        unsafe { sys::game_over(self.ale.as_ptr()) }
    }

    /// Frames emulated since the last reset.
    pub fn episode_frame_number(&self) -> u64 {
        // SAFETY: read-only query on a live ALEInterface.
        unsafe { sys::getEpisodeFrameNumber(self.ale.as_ptr()) as u64 }
    }

    /// Writes the current screen as RGB, `[210, 160, 3]` u8, into `out`
    /// (`out.len()` must be [`RGB_LEN`]; panics otherwise).
    pub fn screen_rgb(&self, out: &mut [u8]) {
        assert_eq!(
            out.len(),
            RGB_LEN,
            "screen_rgb buffer must be 210*160*3 bytes"
        );
        // SAFETY: `out` holds exactly width*height*3 bytes, as ALE writes.
        unsafe { sys::getScreenRGB(self.ale.as_ptr(), out.as_mut_ptr()) }
    }

    /// Writes ALE's own grayscale screen, `[210, 160]` u8, into `out` (panics on a wrong
    /// length). Cartridge's observations use [`crate::preprocess::rgb_to_gray`] instead.
    pub fn screen_gray(&self, out: &mut [u8]) {
        assert_eq!(out.len(), SCREEN_HEIGHT * SCREEN_WIDTH);
        // SAFETY: `out` holds exactly width*height bytes, as ALE writes.
        unsafe { sys::getScreenGrayscale(self.ale.as_ptr(), out.as_mut_ptr()) }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SAFETY: the pointer came from ALE_new and is deleted exactly once.
        unsafe { sys::ALE_del(self.ale.as_ptr()) }
    }
}

fn path_cstring(p: &std::path::Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidConfig(format!("ROM path {} contains a NUL byte", p.display())))
}

/// The path ALE gets, plus an optional temporary directory that must outlive the emulator.
pub(crate) type AlePath = (PathBuf, Option<tempfile::TempDir>);
