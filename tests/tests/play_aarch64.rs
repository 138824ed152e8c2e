//! The aarch64 `play` (64-bit Raspberry Pi OS / Debian arm64), cross-built by
//! `scripts/aarch64.sh build` into `target/aarch64-unknown-linux-gnu/release/play` and run
//! under qemu user-mode emulation (`scripts/aarch64.sh run`) with the aarch64 libonnxruntime
//! and ROMs of PyPI's aarch64 wheels, plays exactly the games the x86-64 `play` plays: for the
//! same model, ROM, seed and frame limit, the same per-game lines (score, frames, time limit)
//! and the same JSON returns and frame count. That holds only if the emulator, the
//! preprocessing, ONNX Runtime's forward pass, the action sampling and a recurrent model's
//! state carry agree across the two architectures. The aarch64 binary also refuses a bad ROM
//! and a bad model with the x86 binary's exit code and message.
//!
//! `make test` sets the aarch64 side up first (`make play-aarch64-build`); without it these
//! tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cartridge_tests::{assert_clean_failure, bin, root, run, summary, texts};

fn script() -> PathBuf {
    root().join("scripts/aarch64.sh")
}

/// The aarch64 binary itself; panics unless it, qemu, the aarch64 libonnxruntime and the ROMs
/// are all in place (the script's `check` names what is missing).
fn aarch64_play() -> PathBuf {
    let o = run(Command::new(script()).arg("check"));
    assert!(
        o.status.success(),
        "the aarch64 play cannot run: run `make play-aarch64-build` (or `make play-aarch64`) first\n{}",
        texts(&o).1
    );
    let p = root().join("target/aarch64-unknown-linux-gnu/release/play");
    let elf = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    // ELF header: 64-bit little-endian, e_machine (offset 18) = 183 (EM_AARCH64).
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "{} is not a 64-bit LE ELF",
        p.display()
    );
    assert_eq!(
        u16::from_le_bytes([elf[18], elf[19]]),
        183,
        "{} is not an aarch64 executable",
        p.display()
    );
    p
}

/// `play ARGS` on x86-64 and on aarch64 under qemu, in that order.
fn both(args: &[&str]) -> (Output, Output) {
    aarch64_play();
    let x86 = run(Command::new(bin("play")).args(args).current_dir(root()));
    let arm = run(Command::new(script())
        .arg("run")
        .args(args)
        .current_dir(root()));
    (x86, arm)
}

/// The per-game lines of `play`'s stdout without their wall-clock `seconds` field.
fn game_lines(o: &Output) -> Vec<String> {
    let (out, _) = texts(o);
    out.lines()
        .filter(|l| l.starts_with("episode "))
        .map(|l| {
            let mut words: Vec<&str> = l.split(' ').collect();
            if let Some(i) = words.iter().position(|w| *w == "seconds") {
                words.drain(i..=i + 1);
            }
            words.join(" ")
        })
        .collect()
}

/// Plays `args` on both architectures and asserts the same games: per-game lines, returns,
/// frames and the summary's deterministic fields. Returns the x86 summary.
fn assert_same_games(args: &[&str], episodes: usize) -> serde_json::Value {
    let (x86, arm) = both(args);
    let (xs, arms) = (summary(&x86), summary(&arm));
    let (xl, al) = (game_lines(&x86), game_lines(&arm));
    assert_eq!(xl.len(), episodes, "x86 per-game lines: {xl:?}");
    assert_eq!(
        al,
        xl,
        "aarch64 played other games than x86 for {args:?}\naarch64 stderr: {}",
        texts(&arm).1
    );
    for k in [
        "game",
        "algo",
        "selection",
        "episodes",
        "returns",
        "frames",
        "mean_return",
        "seed",
        "sticky",
        "headless",
    ] {
        assert_eq!(
            arms[k], xs[k],
            "summary field {k}: aarch64 {arms} vs x86 {xs}"
        );
    }
    eprintln!(
        "{args:?}: returns {} frames {}; aarch64 under qemu {:.1} s (x86 {:.1} s)",
        xs["returns"], xs["frames"], arms["wall_s"], xs["wall_s"]
    );
    xs
}

fn model(name: &str) -> String {
    root()
        .join("models")
        .join(format!("{name}.onnx"))
        .display()
        .to_string()
}

#[test]
fn shipped_breakout_plays_the_same_game_on_aarch64() {
    let m = model("breakout");
    let s = assert_same_games(
        &[
            &m,
            "--rom",
            "breakout",
            "--headless",
            "--seed",
            "3",
            "--max-frames",
            "2000",
        ],
        1,
    );
    // A real game: the agent scores and uses the frame budget (it loses lives, not the game).
    assert!(s["returns"][0].as_i64().is_some_and(|r| r > 0), "{s}");
    assert!(s["frames"].as_u64().is_some_and(|f| f >= 2000), "{s}");
}

#[test]
fn shipped_pong_lstm_plays_the_same_games_on_aarch64() {
    // Two games, so the recurrent state is carried through each and zeroed at the second's
    // start on both sides.
    let m = model("pong-lstm");
    let s = assert_same_games(
        &[
            &m,
            "--rom",
            "pong",
            "--headless",
            "--seed",
            "5",
            "--episodes",
            "2",
            "--max-frames",
            "1200",
        ],
        2,
    );
    assert_eq!(s["algo"], "ppo", "{s}");
    // Both games reach the time limit; the last agent step (4 frames) may pass it.
    assert!(
        s["frames"]
            .as_u64()
            .is_some_and(|f| (2 * 1200..2 * 1204).contains(&f)),
        "two truncated games: {s}"
    );
}

/// The `error:` lines of a stderr (ONNX Runtime may add warnings of its own about the CPU).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("error:")).collect()
}

/// Both binaries fail the same way: the same exit code and the same `error:` lines.
fn assert_same_refusal(args: &[&str], needle: &str) {
    let (x86, arm) = both(args);
    let xe = assert_clean_failure(&x86, needle);
    let ae = assert_clean_failure(&arm, needle);
    assert_eq!(arm.status.code(), x86.status.code());
    assert_eq!(
        error_lines(&ae),
        error_lines(&xe),
        "aarch64 and x86 refuse {args:?} differently"
    );
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

#[test]
fn aarch64_refuses_a_bad_rom_and_a_bad_model_as_x86_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rom = dir.path().join("breakout.bin");
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&rom, bytes).expect("write");
    let m = model("breakout");
    assert_same_refusal(
        &[&m, "--rom", path_str(&rom), "--headless"],
        "is not a usable Atari ROM",
    );

    let bad = dir.path().join("half.onnx");
    let full = std::fs::read(&m).expect("read the shipped model");
    std::fs::write(&bad, &full[..full.len() / 2]).expect("write");
    assert_same_refusal(
        &[path_str(&bad), "--rom", "breakout", "--headless"],
        "cannot be used",
    );
}
