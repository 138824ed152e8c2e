//! The replay memory rebuilds, from its one-frame-per-slot storage, exactly the stacked
//! observations the real Breakout environment produced (FrameStack of the real preprocessing),
//! across lost lives (EpisodicLife episode boundaries) and game overs, for two environments.

// Test fixtures are CPU tensors built directly.
#![allow(clippy::disallowed_methods)]

use cartridge_infer::preprocess::OBS_LEN;
use cartridge_infer::rom::RomSearch;
use cartridge_train::dqn::DqnArgs;
use cartridge_train::dqn::DqnConfig;
use cartridge_train::dqn::ReplayMemory;
use cartridge_train::dqn::{collect, start_episodes, DqnAgent};
use cartridge_train::seeds::EnvSeeds;
use cartridge_train::vecenv::{AtariTrainEnv, VecEnv};
use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Device;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    dqn: DqnArgs,
}

#[test]
fn stacks_rebuilt_from_frames_equal_the_environment_observations() {
    let rom = RomSearch::default()
        .resolve("breakout")
        .expect("breakout ROM");
    let envs = (0..2)
        .map(|i| AtariTrainEnv::new(&rom, EnvSeeds::split(11 + i), 0.0).expect("env"))
        .collect::<Vec<_>>();
    let mut envs = VecEnv::new(envs, 2).expect("vecenv");
    let cfg = DqnConfig::from_args(&Cli::parse_from(["t"]).dqn).expect("cfg");
    let agent = DqnAgent::new(&cfg, envs.num_actions(), Device::Cpu).expect("agent");
    // Large enough not to wrap: every slot is still in the ring at the end.
    let steps = 1500;
    let mut replay = ReplayMemory::new(2 * (2 * steps + 10), 2).expect("replay");
    start_episodes(&envs, &mut replay);
    // expected[env]: (logical slot, observation it must rebuild to).
    let mut expected: Vec<Vec<(u64, Vec<u8>)>> = (0..2)
        .map(|i| vec![(0, envs.obs()[i * OBS_LEN..(i + 1) * OBS_LEN].to_vec())])
        .collect();
    let mut next_slot = [1u64; 2];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut boundaries = 0;
    for _ in 0..steps {
        collect(&agent, &mut envs, &mut replay, 1.0, &mut rng).expect("collect");
        for i in 0..2 {
            let t = envs.last_transitions()[i];
            let obs = envs.obs()[i * OBS_LEN..(i + 1) * OBS_LEN].to_vec();
            if t.terminated || t.truncated {
                boundaries += 1;
                expected[i].push((next_slot[i], envs.final_obs(i).to_vec()));
                next_slot[i] += 1;
            }
            expected[i].push((next_slot[i], obs));
            next_slot[i] += 1;
        }
    }
    // Random Breakout loses a life every ~40 steps: many episode starts were crossed.
    assert!(boundaries >= 20, "only {boundaries} episode boundaries");
    for (i, list) in expected.iter().enumerate() {
        for (slot, obs) in list {
            assert!(
                replay.stack(i, *slot) == *obs,
                "env {i}: the stack at slot {slot} differs from the observation"
            );
        }
    }
}
