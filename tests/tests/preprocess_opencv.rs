//! WarpFrame against OpenCV itself: `cv2.cvtColor(RGB2GRAY)` + `cv2.resize(INTER_AREA)`
//! (opencv-python-headless in .venv) on real max-pooled Breakout and Pong frames and on noise.

use std::io::Write;
use std::process::{Command, Stdio};

use cartridge_infer::ale::{Emulator, EmulatorConfig, RGB_LEN};
use cartridge_infer::preprocess::{
    rgb_to_gray, AreaResize, AtariConfig, AtariEnv, FRAME_LEN, OBS_LEN,
};
use cartridge_tests::{rom, venv_python};
use rand::{Rng, SeedableRng};

/// OpenCV's warp of `n` RGB frames `[210, 160, 3]` given back to back on stdin.
fn opencv_warp(rgb: &[u8]) -> Vec<u8> {
    let script = r#"
import sys, numpy as np, cv2
x = np.frombuffer(sys.stdin.buffer.read(), np.uint8).reshape(-1, 210, 160, 3)
out = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA) for f in x]
sys.stdout.buffer.write(np.stack(out).tobytes())
"#;
    let mut child = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rgb)
        .expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "cv2 failed (run `make test` to install opencv-python-headless)"
    );
    out.stdout
}

#[test]
fn warp_frame_equals_opencv_on_real_frames() {
    let mut rgb = Vec::new();
    let mut ours = Vec::new();
    for game in ["breakout", "pong"] {
        let emu = Emulator::new(
            &rom(game),
            EmulatorConfig {
                seed: 3,
                sticky: 0.0,
            },
        )
        .expect("emu");
        let mut env = AtariEnv::new(emu, AtariConfig::default(), 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        env.reset();
        for step in 0..400 {
            let a = rng.random_range(0..env.num_actions());
            if env.step(a).game_over {
                env.reset();
            }
            if step % 20 == 0 {
                rgb.extend_from_slice(env.pooled_rgb());
                ours.extend_from_slice(&env.obs()[OBS_LEN - FRAME_LEN..]);
            }
        }
    }
    let cv = opencv_warp(&rgb);
    assert_eq!(cv.len(), ours.len());
    let diff = cv.iter().zip(&ours).filter(|(a, b)| a != b).count();
    assert_eq!(
        diff,
        0,
        "{diff} of {} pixels differ from OpenCV",
        ours.len()
    );
}

#[test]
fn warp_frame_equals_opencv_on_noise() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let frames = 8;
    let rgb: Vec<u8> = (0..frames * RGB_LEN).map(|_| rng.random()).collect();
    let mut resize = AreaResize::atari();
    let mut ours = vec![0u8; frames * FRAME_LEN];
    let mut gray = vec![0u8; RGB_LEN / 3];
    for (f, out) in rgb.chunks(RGB_LEN).zip(ours.chunks_mut(FRAME_LEN)) {
        rgb_to_gray(f, &mut gray);
        resize.apply(&gray, out);
    }
    let cv = opencv_warp(&rgb);
    let max = cv
        .iter()
        .zip(&ours)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    let diff = cv.iter().zip(&ours).filter(|(a, b)| a != b).count();
    // Gray is exact. On noise about 0.07% of resized pixels fall exactly on .5 in exact
    // arithmetic, where float summation order decides the rounding: allow off-by-one there
    // (real Atari frames, above, match exactly).
    assert!(
        max <= 1 && diff * 500 <= ours.len(),
        "max diff {max}, {diff} pixels differ"
    );
}
