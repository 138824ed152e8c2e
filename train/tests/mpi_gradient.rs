//! Data-parallel PPO's gradient: on a fixed batch, the gradient averaged over 2 MPI ranks that
//! each hold half of the batch equals the gradient of the whole batch in one process (with
//! advantage normalization off, which is per local minibatch under MPI).
//!
//! `mpirun_ranks_average_to_the_whole_batch_gradient` runs this file's test binary under
//! `mpirun -np 2` with `rank_gradient` (ignored otherwise), in which every rank computes its
//! half, averages with `Dist::average_gradients`, and rank 0 compares with the whole batch.

// CPU fixtures built with tch's constructors.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

use cartridge_train::dist::{launched_by_mpi, Dist};
use cartridge_train::ppo::update::{minibatch_loss, Targets};
use cartridge_train::ppo::{ActorCritic, PpoArgs, PpoConfig};
use clap::Parser;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    ppo: PpoArgs,
}

const BATCH: i64 = 8;

/// A fixed batch of 8 (random pixels, actions, old log-probabilities, values, advantages and
/// returns), the same on every rank.
fn batch() -> (Tensor, Targets) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let pixels: Vec<u8> = (0..BATCH * 4 * 84 * 84).map(|_| rng.random()).collect();
    let obs = Tensor::from_slice(&pixels).view([BATCH, 4, 84, 84]);
    let mut f = |lo: f32, hi: f32| {
        let v: Vec<f32> = (0..BATCH).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_slice(&v)
    };
    let logprobs = f(-2.0, -0.5);
    let values = f(-1.0, 1.0);
    let advantages = f(-2.0, 2.0);
    let returns = f(-1.0, 1.0);
    let actions: Vec<i64> = (0..BATCH).map(|i| i % 4).collect();
    (
        obs,
        Targets {
            actions: Tensor::from_slice(&actions),
            logprobs,
            values,
            advantages,
            returns,
        },
    )
}

/// The flattened gradient of the PPO loss of rows `rows` of the batch, from zero gradients.
fn gradient(model: &ActorCritic, cfg: &PpoConfig, rows: &Tensor) -> Vec<f32> {
    let (obs, t) = batch();
    let pick = |x: &Tensor| x.index_select(0, rows);
    let t = Targets {
        actions: pick(&t.actions),
        logprobs: pick(&t.logprobs),
        values: pick(&t.values),
        advantages: pick(&t.advantages),
        returns: pick(&t.returns),
    };
    let params = model.params();
    for p in &params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let (logits, value) = model.forward(&pick(&obs));
    minibatch_loss(&logits, &value, &t, cfg, 0.1)
        .loss
        .backward();
    flat_grad(&params)
}

fn flat_grad(params: &[Tensor]) -> Vec<f32> {
    let parts: Vec<Tensor> = params.iter().map(|p| p.grad().view(-1)).collect();
    Vec::try_from(Tensor::cat(&parts, 0)).expect("gradient")
}

/// Runs under `mpirun -np 2` only: rank r takes rows r*4..r*4+4.
#[test]
#[ignore = "run by mpirun_ranks_average_to_the_whole_batch_gradient under mpirun"]
fn rank_gradient() {
    assert!(launched_by_mpi(), "run me under mpirun -np 2");
    tch::set_num_threads(1);
    let dist = Dist::from_env().expect("MPI");
    assert_eq!(dist.size(), 2);
    let args = Cli::parse_from(["t", "--norm-adv", "false"]).ppo;
    let cfg = PpoConfig::from_args(&args).expect("config");
    let model = ActorCritic::new(Device::Cpu, 4, 3).expect("model");
    let params = model.params();
    let half = BATCH / 2;
    let mine = Tensor::arange_start(
        dist.rank() as i64 * half,
        (dist.rank() as i64 + 1) * half,
        (Kind::Int64, Device::Cpu),
    );
    let local = gradient(&model, &cfg, &mine);
    dist.average_gradients(&params).expect("all-reduce");
    let averaged = flat_grad(&params);
    if dist.is_root() {
        let whole = gradient(
            &model,
            &cfg,
            &Tensor::arange(BATCH, (Kind::Int64, Device::Cpu)),
        );
        let diff = averaged
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        let local_diff = local
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("max |averaged - whole| = {diff:e}, max |whole| = {scale:e}, max |half - whole| = {local_diff:e}");
        assert!(
            diff < 1e-5,
            "averaged gradient differs from the whole batch's by {diff}"
        );
        // The halves alone are far from it, so the comparison says something.
        assert!(
            local_diff > 1e-3,
            "half the batch gives the same gradient ({local_diff})"
        );
    }
}

#[test]
fn mpirun_ranks_average_to_the_whole_batch_gradient() {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("mpirun")
        .args(["--oversubscribe", "-np", "2"])
        .arg(&exe)
        .args([
            "rank_gradient",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun (Open MPI: `make train` installs openmpi-bin)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("max |averaged - whole|"), "{text}");
    assert_eq!(
        text.matches("1 passed").count(),
        2,
        "both ranks ran it: {text}"
    );
}
