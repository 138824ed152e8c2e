//! The play window (minifb): every emulated frame in colour, integer scale, real-time pacing.
//!
//! Keys: Esc or Q quits, Space pauses.

use minifb::{Key, KeyRepeat, Scale, Window, WindowOptions};

use crate::ale::{SCREEN_HEIGHT, SCREEN_WIDTH};
use crate::{Error, Result};

/// Whether a display server is reachable (X11 `DISPLAY` or `WAYLAND_DISPLAY` set).
pub fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// The minifb scale for an integer factor (1, 2, 4, 8, 16, 32; minifb has no 3x).
pub fn scale_of(factor: u32) -> Result<Scale> {
    Ok(match factor {
        1 => Scale::X1,
        2 => Scale::X2,
        4 => Scale::X4,
        8 => Scale::X8,
        16 => Scale::X16,
        32 => Scale::X32,
        other => {
            return Err(Error::InvalidConfig(format!(
                "--scale {other} is not supported; use 1, 2, 4 or 8"
            )))
        }
    })
}

/// An open game window.
pub struct GameWindow {
    window: Window,
    pixels: Vec<u32>,
    paused: bool,
}

impl std::fmt::Debug for GameWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameWindow")
            .field("paused", &self.paused)
            .finish()
    }
}

/// What the user asked for since the last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowEvent {
    /// Keep playing.
    Continue,
    /// Esc, Q, or the window was closed.
    Quit,
}

impl GameWindow {
    /// Opens a 160x210 window scaled by `scale`, paced at `fps` frames per second (0: no limit).
    pub fn open(title: &str, scale: u32, fps: u32) -> Result<Self> {
        let opts = WindowOptions {
            scale: scale_of(scale)?,
            ..WindowOptions::default()
        };
        let mut window = Window::new(title, SCREEN_WIDTH, SCREEN_HEIGHT, opts)
            .map_err(|e| Error::Window(format!("cannot open a window ({e}); use --headless")))?;
        window.set_target_fps(fps as usize);
        Ok(Self {
            window,
            pixels: vec![0; SCREEN_WIDTH * SCREEN_HEIGHT],
            paused: false,
        })
    }

    /// Sets the title bar text.
    pub fn set_title(&mut self, title: &str) {
        self.window.set_title(title);
    }

    /// Shows one RGB frame `[210, 160, 3]` u8 (waiting for the frame pacing), then handles
    /// keys; while paused it keeps showing the frame until Space or quit.
    pub fn show(&mut self, rgb: &[u8]) -> Result<WindowEvent> {
        for (p, px) in self.pixels.iter_mut().zip(rgb.chunks_exact(3)) {
            *p = (px[0] as u32) << 16 | (px[1] as u32) << 8 | px[2] as u32;
        }
        loop {
            self.window
                .update_with_buffer(&self.pixels, SCREEN_WIDTH, SCREEN_HEIGHT)
                .map_err(|e| Error::Window(e.to_string()))?;
            if !self.window.is_open()
                || self.window.is_key_down(Key::Escape)
                || self.window.is_key_down(Key::Q)
            {
                return Ok(WindowEvent::Quit);
            }
            if self.window.is_key_pressed(Key::Space, KeyRepeat::No) {
                self.paused = !self.paused;
            }
            if !self.paused {
                return Ok(WindowEvent::Continue);
            }
            // Paused with --fps 0 would otherwise spin.
            std::thread::sleep(std::time::Duration::from_millis(16));
        }
    }
}
