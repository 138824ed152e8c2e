//! Helpers for Cartridge's integration tests: where the real binaries, ROMs, Python and
//! ONNX Runtime are, and how to make models for them.
//!
//! The tests run the binaries built by `make test` (`cargo build --release --workspace --bins`
//! then `cargo test --release --workspace`), from the same profile folder as the test itself.

pub mod reference;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cartridge_export::{Algo, Checkpoint, Metadata, Policy};
use cartridge_infer::ale::{Emulator, EmulatorConfig};
use cartridge_infer::rom::{Rom, RomSearch};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A workspace binary (`play`, `export`) of the profile the tests were built with.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the binaries first (`cargo build --release --workspace --bins`, as `make test` does)",
        p.display()
    );
    p
}

/// The project's Python (`.venv/bin/python`, made by `make test`).
pub fn venv_python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(p.is_file(), "{} is missing: run `make test`", p.display());
    p
}

/// Runs a command and returns its output (never panics on a non-zero exit).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Starts `cmd` with piped output, waits (at most `limit`) until `ready()` holds while the
/// process is still running, sends it SIGINT (Ctrl-C), and returns its output.
pub fn interrupt_when(
    cmd: &mut Command,
    limit: std::time::Duration,
    ready: impl Fn() -> bool,
) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let t0 = std::time::Instant::now();
    while !ready() {
        assert!(t0.elapsed() < limit, "{cmd:?}: not ready after {limit:?}");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "{cmd:?} exited early"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    child.wait_with_output().expect("wait")
}

/// stdout and stderr of an output as strings.
pub fn texts(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts a clean failure: a non-zero exit code (not a signal, so no abort), no panic, and
/// `needle` in stderr. Returns stderr.
pub fn assert_clean_failure(o: &Output, needle: &str) -> String {
    let (out, err) = texts(o);
    assert!(
        o.status.code().is_some_and(|c| c != 0),
        "expected a non-zero exit code, got {:?}\nstdout: {out}\nstderr: {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: "),
        "no `error:` line: {err}"
    );
    err
}

/// A validated ROM of ale-py's set.
pub fn rom(game: &str) -> Rom {
    RomSearch::default()
        .resolve(game)
        .unwrap_or_else(|e| panic!("ROM {game}: {e} (run `make test` to install ale-py)"))
}

/// The game's minimal action set (ALE ids) as the emulator reports it.
pub fn minimal_actions(rom: &Rom) -> Vec<u32> {
    let emu = Emulator::new(rom, EmulatorConfig::default()).expect("emulator");
    emu.minimal_action_set().iter().map(|&a| a as u32).collect()
}

/// A random-init checkpoint for a game, with the game's real MD5 and action set.
pub fn random_checkpoint(algo: Algo, game: &str, seed: u64) -> Checkpoint {
    random_checkpoint_with(algo, Policy::Cnn, game, seed)
}

/// [`random_checkpoint`] for `policy`'s network (`Policy::Lstm` with PPO only).
pub fn random_checkpoint_with(algo: Algo, policy: Policy, game: &str, seed: u64) -> Checkpoint {
    let rom = rom(game);
    let mut meta =
        Metadata::new(algo, game, rom.md5.clone(), minimal_actions(&rom)).with_policy(policy);
    meta.seed = seed;
    Checkpoint::random(meta).expect("random checkpoint")
}

/// Writes a random-init ONNX model for a game into `dir` and returns its path.
pub fn random_model(dir: &Path, algo: Algo, game: &str, seed: u64) -> PathBuf {
    let path = dir.join(format!("{game}-{}.onnx", algo.as_str()));
    cartridge_export::write_onnx(&random_checkpoint(algo, game, seed), &[], &path)
        .expect("write onnx");
    path
}

/// Parses the last stdout line of `play` as JSON.
pub fn summary(o: &Output) -> serde_json::Value {
    let (out, err) = texts(o);
    assert!(
        o.status.success(),
        "play failed: {:?}\nstdout: {out}\nstderr: {err}",
        o.status
    );
    let last = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stdout; stderr: {err}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

/// The `metadata_props` of the ONNX model at `path`, by key (`cartridge.algo`, ...).
pub fn onnx_metadata(path: &Path) -> HashMap<String, String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    cartridge_export::read_metadata_props(&bytes)
        .expect("metadata")
        .into_iter()
        .collect()
}

/// `metrics.csv` as (column name -> (global_step, value)) for the non-empty cells.
pub fn metrics_columns(dir: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let mut cols: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let step: i64 = cells[0].parse().expect("global_step");
        for (name, cell) in header.iter().zip(&cells).skip(1) {
            if !cell.is_empty() {
                let v: f64 = cell.parse().expect("number");
                cols.entry((*name).into()).or_default().push((step, v));
            }
        }
    }
    cols
}

/// Every TensorBoard scalar series of a run as the `tensorboard` package loads the run
/// folder (`EventAccumulator`, which checks each record's CRCs and applies restarts).
pub fn tensorboard_scalars(dir: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let script = root().join("tests/tensorboard_scalars.py");
    let o = run(Command::new(venv_python()).arg(script).arg(dir));
    assert!(o.status.success(), "tensorboard: {:?}", texts(&o));
    let series: BTreeMap<String, Vec<(i64, f64)>> =
        serde_json::from_slice(&o.stdout).expect("json");
    // The values are f32 widened to f64; serde_json's f64 parsing may miss the printed
    // double by an ulp, never by an f32 ulp, so they are rounded back to f32.
    series
        .into_iter()
        .map(|(tag, values)| (tag, as_f32(&values)))
        .collect()
}

/// TensorBoard stores f32: the CSV's f64 values as TensorBoard returns them.
pub fn as_f32(series: &[(i64, f64)]) -> Vec<(i64, f64)> {
    series
        .iter()
        .map(|&(s, v)| (s, f64::from(v as f32)))
        .collect()
}

/// How many TensorBoard event files (`*tfevents*`) `dir` holds.
pub fn event_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("run dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains("tfevents"))
        })
        .count()
}
