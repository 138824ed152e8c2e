//! The evaluation protocol plays a lost life exactly as training does: a Breakout game
//! through `play`'s session (the protocol's loop) and through a hand loop of the training
//! environment (`AtariTrainEnv`: EpisodicLife, FireReset, ClipReward; reset when a learning
//! episode ends, as `VecEnv` does) from the same seeds and actions show the policy the same
//! observation at every decision, across every lost life, and score the same raw game.

use cartridge_export::{Algo, Checkpoint, Metadata};
use cartridge_infer::policy::{ModelOverrides, OnnxPolicy};
use cartridge_infer::preprocess::AtariEnv;
use cartridge_infer::rom::RomSearch;
use cartridge_infer::seed::{stream, Stream};
use cartridge_infer::select::{ActionSelector, Selection};
use cartridge_infer::session::{Observer, Session, SessionConfig};
use cartridge_train::seeds::EnvSeeds;
use cartridge_train::vecenv::{AtariTrainEnv, Environment};

/// Records every observation the session shows (after each reset and each step).
#[derive(Default)]
struct Recorder {
    seen: Vec<Vec<u8>>,
}

impl Observer for Recorder {
    fn observe(&mut self, env: &AtariEnv) -> cartridge_infer::Result<()> {
        self.seen.push(env.obs().to_vec());
        Ok(())
    }
}

#[test]
fn a_played_game_sees_trainings_observations_after_each_lost_life() {
    let rom = RomSearch::default()
        .resolve("breakout")
        .expect("breakout ROM");
    let dir = tempfile::tempdir().expect("tmp");
    let model = dir.path().join("random.onnx");
    // A near-uniform random policy (CleanRL's init), so the game loses its lives quickly.
    let meta = Metadata::new(Algo::Ppo, "breakout", &rom.md5, rom_actions(&rom));
    let ckpt = Checkpoint::random(meta).expect("checkpoint");
    cartridge_export::write_onnx(&ckpt, &[], &model).expect("onnx");
    let seed = 11;

    let policy = OnnxPolicy::load(&model, 1, &ModelOverrides::default()).expect("policy");
    let mut session =
        Session::new(policy, &rom, &SessionConfig::protocol(seed, 0.0)).expect("session");
    let mut recorder = Recorder::default();
    let games = session.play(Some(1), &mut recorder).expect("play");

    // The same game by hand, with the training environment and the session's streams.
    let mut policy = OnnxPolicy::load(&model, 1, &ModelOverrides::default()).expect("policy");
    let mut selector = ActionSelector::new(
        Selection::default_for(Algo::Ppo),
        stream(seed, Stream::Selector),
    );
    let seeds = EnvSeeds {
        emulator: stream(seed, Stream::Emulator),
        noop_reset: stream(seed, Stream::NoopReset),
        selector: 0,
    };
    let mut env = AtariTrainEnv::new(&rom, seeds, 0.0).expect("training env");
    let mut obs = vec![0u8; cartridge_contract::OBS_LEN];
    env.reset(&mut obs);
    let mut seen = vec![obs.clone()];
    let (mut episodes, mut score) = (1, None);
    while score.is_none() {
        let d = policy.decide(&obs).expect("decide");
        let t = env.step(selector.select(&d.scores), &mut obs);
        seen.push(obs.clone());
        if let Some(game) = t.episode {
            score = Some(game.ret);
        } else if t.terminated || t.truncated {
            // A lost life: VecEnv resets the environment, and the rollout zeroes the state.
            env.reset(&mut obs);
            policy.reset_state();
            seen.push(obs.clone());
            episodes += 1;
        }
    }
    assert_eq!(episodes, 5, "Breakout's 5 lives are 5 learning episodes");
    assert_eq!(recorder.seen.len(), seen.len(), "observations shown");
    let first_diff = recorder.seen.iter().zip(&seen).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "the session and training differ at this observation"
    );
    assert_eq!(Some(games[0].score as f64), score, "raw full-game return");
}

/// The ALE ids of the game's minimal action set, as the session will check them.
fn rom_actions(rom: &cartridge_infer::rom::Rom) -> Vec<u32> {
    let emu = cartridge_infer::ale::Emulator::new(
        rom,
        cartridge_infer::ale::EmulatorConfig::seeded(1, 0.0),
    )
    .expect("emulator");
    emu.minimal_action_set().iter().map(|&a| a as u32).collect()
}
