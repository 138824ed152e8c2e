//! `--record out.gif`: an animated GIF of the agent's colour frames (the max-pooled RGB frame
//! of every agent step, i.e. what each observation was made from), one GIF frame per agent
//! step at 60/frame_skip frames per second. Written to a temporary file and renamed at the
//! end, so an interrupted run leaves no partial GIF.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbaImage};

use crate::ale::{SCREEN_HEIGHT, SCREEN_WIDTH};
use crate::{Error, Result};

/// An animated GIF being written.
pub struct GifRecorder {
    encoder: GifEncoder<BufWriter<File>>,
    file: File,
    tmp: tempfile::TempPath,
    target: PathBuf,
    delay: Delay,
    frames: u64,
}

impl std::fmt::Debug for GifRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GifRecorder")
            .field("target", &self.target)
            .field("frames", &self.frames)
            .finish()
    }
}

impl GifRecorder {
    /// Starts a GIF at `path`, showing each frame for `frame_ms` milliseconds.
    pub fn create(path: &Path, frame_ms: u32) -> Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".cartridge-record-").suffix(".gif.tmp");
        // tempfile creates 0600; a recording is an ordinary file to share.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let tmp = builder.tempfile_in(dir).map_err(|e| {
            Error::Record(format!(
                "cannot write in {} ({e}); pick another --record path",
                dir.display()
            ))
        })?;
        let (file, tmp) = tmp.into_parts();
        let mut encoder = GifEncoder::new_with_speed(BufWriter::new(file.try_clone()?), 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| Error::Record(e.to_string()))?;
        Ok(Self {
            encoder,
            file,
            tmp,
            target: path.to_path_buf(),
            delay: Delay::from_numer_denom_ms(frame_ms, 1),
            frames: 0,
        })
    }

    /// Appends one RGB frame `[210, 160, 3]` u8.
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let mut rgba = Vec::with_capacity(SCREEN_WIDTH * SCREEN_HEIGHT * 4);
        for px in rgb.chunks_exact(3) {
            rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
        }
        let img = RgbaImage::from_raw(SCREEN_WIDTH as u32, SCREEN_HEIGHT as u32, rgba)
            .ok_or_else(|| Error::Record("frame buffer has the wrong size".into()))?;
        self.encoder
            .encode_frame(Frame::from_parts(img, 0, 0, self.delay))
            .map_err(|e| Error::Record(e.to_string()))?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Finishes the GIF and moves it to its path.
    pub fn finish(self) -> Result<PathBuf> {
        let Self {
            encoder,
            file,
            tmp,
            target,
            ..
        } = self;
        // Dropping the encoder writes the GIF trailer and flushes the buffer.
        drop(encoder);
        file.sync_all()?;
        tmp.persist(&target).map_err(|e| {
            Error::Record(format!("cannot move the GIF to {}: {e}", target.display()))
        })?;
        Ok(target)
    }
}
