//! The real window under Xvfb: `play` opens a minifb window, a screenshot of the X screen
//! shows Breakout (its six brick colours), and the window is paced at 60 frames per second.
//! Needs Xvfb, xwd and ImageMagick's convert (`make test` installs them).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cartridge_export::Algo;
use cartridge_tests::{bin, random_model};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_xvfb() -> (Killed, String) {
    for n in 0..20 {
        let display = 90 + (std::process::id() as usize + n) % 400;
        if Path::new(&format!("/tmp/.X11-unix/X{display}")).exists() {
            continue;
        }
        let child = Command::new("Xvfb")
            .args([
                &format!(":{display}"),
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb not found: install xvfb (make test does)");
        let guard = Killed(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if Path::new(&format!("/tmp/.X11-unix/X{display}")).exists() {
                return (guard, format!(":{display}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("Xvfb did not start");
}

/// Breakout's brick colours in ALE's NTSC palette (rows red to blue), read from a frame of
/// ale-py 0.12.1 (`getScreenRGB`, 864 pixels each at the start of a game).
const BRICKS: [[u8; 3]; 6] = [
    [200, 72, 72],
    [198, 108, 58],
    [180, 122, 48],
    [162, 162, 42],
    [72, 160, 72],
    [66, 72, 200],
];

#[test]
fn window_shows_breakout_at_60_fps() {
    let (_xvfb, display) = start_xvfb();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 8);
    let play = Command::new(bin("play"))
        .arg(&model)
        .args([
            "--rom",
            "breakout",
            "--episodes",
            "1",
            "--max-frames",
            "480",
            "--scale",
            "2",
        ])
        .env("DISPLAY", &display)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn play");
    let mut play = Killed(play);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        play.0.try_wait().expect("wait").is_none(),
        "play exited early"
    );

    let shot = dir.path().join("shot.png");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "xwd -root -silent -display {display} | convert xwd:- png:{}",
            shot.display()
        ))
        .status()
        .expect("xwd/convert (x11-apps, imagemagick)");
    assert!(status.success(), "screenshot failed");

    let img = image::open(&shot).expect("screenshot png").to_rgb8();
    let mut counts = [0usize; 6];
    let mut non_black = 0usize;
    for px in img.pixels() {
        if px.0 != [0, 0, 0] {
            non_black += 1;
        }
        if let Some(i) = BRICKS.iter().position(|c| *c == px.0) {
            counts[i] += 1;
        }
    }
    // At scale 2 each brick row is 864 * 4 = 3456 pixels; a few bricks may be gone already.
    assert!(
        counts.iter().all(|&c| c >= 2000),
        "brick colours on screen: {counts:?}"
    );
    assert!(
        non_black > 20_000,
        "screen nearly blank: {non_black} non-black pixels"
    );

    // 480 frames at 60 fps take 8 s; the summary reports the window's pace.
    let out = std::mem::replace(&mut play.0, Command::new("true").spawn().expect("true"))
        .wait_with_output()
        .expect("play output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "play failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("summary")).expect("json summary");
    assert_eq!(s["headless"], false);
    // 480 frames, give or take one step and play's automatic FIRE (see play.rs).
    let frames = s["frames"].as_u64().expect("frames");
    assert!((480..488).contains(&frames), "{frames} frames");
    let fps = s["emulator_fps"].as_f64().expect("fps");
    assert!(
        (40.0..=62.0).contains(&fps),
        "window pace {fps} fps, expected about 60"
    );
}
