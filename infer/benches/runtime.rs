//! Runtime benchmarks on real parts (ALE, ale-py's Breakout ROM, ONNX Runtime from .venv):
//!
//! - `preprocess/agent_step`: MaxAndSkip pooling + WarpFrame (gray, INTER_AREA) + FrameStack
//!   for one agent step;
//! - `emulator/agent_step_4_frames`: ALE emulating 4 frames with the two RGB reads MaxAndSkip
//!   needs (the emulator's share of a headless step);
//! - `decision/ort_1_thread`: Nature CNN forward (batch 1, u8 input) + action selection;
//! - `decision/lstm_ort_1_thread`: the same for the CNN-LSTM (one frame in, `h` and `c`
//!   carried from the previous decision);
//! - `play/headless_agent_step`: everything `play --headless` does per agent step.
//!
//! Run with `make bench` (or `cargo bench -p cartridge-infer`); pin to one core with
//! `taskset -c 0` for the one-core figures.

use std::hint::black_box;

use cartridge_export::{Algo, Checkpoint, Metadata, Policy as Net};
use cartridge_infer::ale::{Emulator, EmulatorConfig, RGB_LEN};
use cartridge_infer::policy::{ModelOverrides, OnnxPolicy};
use cartridge_infer::preprocess::{
    max_pool, rgb_to_gray, AreaResize, AtariConfig, AtariEnv, FrameStack, FRAME_LEN,
};
use cartridge_infer::rom::{Rom, RomSearch};
use cartridge_infer::select::{ActionSelector, Selection};
use criterion::{criterion_group, criterion_main, Criterion};

/// Breakout's ROM, and random-init PPO models of the Nature CNN and the CNN-LSTM (in that
/// order) in a temporary folder.
fn setup() -> (Rom, tempfile::TempDir, [std::path::PathBuf; 2]) {
    let rom = RomSearch::default()
        .resolve("breakout")
        .expect("breakout ROM (run `make play` first to install ale-py into .venv)");
    let emu = Emulator::new(&rom, EmulatorConfig::default()).expect("emulator");
    let actions: Vec<u32> = emu.minimal_action_set().iter().map(|&a| a as u32).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = [Net::Cnn, Net::Lstm].map(|net| {
        let mut meta =
            Metadata::new(Algo::Ppo, "breakout", rom.md5.clone(), actions.clone()).with_policy(net);
        meta.seed = 1;
        let path = dir.path().join(format!("bench-{net}.onnx"));
        cartridge_export::write_onnx(&Checkpoint::random(meta).expect("ckpt"), &[], &path)
            .expect("onnx");
        path
    });
    (rom, dir, paths)
}

fn benches(c: &mut Criterion) {
    let (rom, _dir, [model, lstm_model]) = setup();

    let mut emu = Emulator::new(&rom, EmulatorConfig::default()).expect("emulator");
    for _ in 0..200 {
        emu.act(1);
    }
    let mut a = vec![0u8; RGB_LEN];
    let mut b = vec![0u8; RGB_LEN];
    emu.screen_rgb(&mut a);
    emu.act(3);
    emu.screen_rgb(&mut b);
    let (mut pooled, mut gray, mut frame) = (
        vec![0u8; RGB_LEN],
        vec![0u8; RGB_LEN / 3],
        vec![0u8; FRAME_LEN],
    );
    let mut resize = AreaResize::atari();
    let mut stack = FrameStack::new(4);
    c.bench_function("preprocess/max_pool", |bench| {
        bench.iter(|| max_pool(black_box(&a), &b, &mut pooled))
    });
    c.bench_function("preprocess/gray", |bench| {
        bench.iter(|| rgb_to_gray(black_box(&pooled), &mut gray))
    });
    c.bench_function("preprocess/resize", |bench| {
        bench.iter(|| resize.apply(black_box(&gray), &mut frame))
    });
    c.bench_function("preprocess/agent_step", |bench| {
        bench.iter(|| {
            max_pool(&a, &b, &mut pooled);
            rgb_to_gray(&pooled, &mut gray);
            resize.apply(&gray, &mut frame);
            stack.push(&frame);
            black_box(stack.obs()[0])
        })
    });

    let mut i = 0usize;
    c.bench_function("emulator/agent_step_4_frames", |bench| {
        bench.iter(|| {
            for f in 0..4 {
                i += 1;
                emu.act([0, 1, 3, 4][(i / 16) % 4]);
                if f >= 2 {
                    emu.screen_rgb(if f == 2 { &mut a } else { &mut b });
                }
            }
            if emu.game_over() {
                emu.reset();
            }
        })
    });

    let mut policy = OnnxPolicy::load(&model, 1, &ModelOverrides::default()).expect("policy");
    let mut selector = ActionSelector::new(Selection::Sample, 1);
    let obs = stack.obs().to_vec();
    c.bench_function("decision/ort_1_thread", |bench| {
        bench.iter(|| {
            let d = policy.decide(black_box(&obs)).expect("decide");
            black_box(selector.select(&d.scores))
        })
    });

    let mut lstm = OnnxPolicy::load(&lstm_model, 1, &ModelOverrides::default()).expect("lstm");
    c.bench_function("decision/lstm_ort_1_thread", |bench| {
        bench.iter(|| {
            let d = lstm.decide(black_box(&obs)).expect("decide");
            black_box(selector.select(&d.scores))
        })
    });

    let emu = Emulator::new(&rom, EmulatorConfig::default()).expect("emulator");
    let mut env = AtariEnv::new(emu, AtariConfig::default(), 1);
    env.reset();
    c.bench_function("play/headless_agent_step", |bench| {
        bench.iter(|| {
            let d = policy.decide(env.obs()).expect("decide");
            let step = env.step(selector.select(&d.scores));
            // A game over, or a lost life (the session's reset continues the game).
            if step.game_over || step.terminated {
                env.reset();
            }
        })
    });
}

criterion_group!(runtime, benches);
criterion_main!(runtime);
