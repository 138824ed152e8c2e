//! The ALE binding on real ROMs: action sets, lives, determinism, one emulator per thread.

use cartridge_infer::ale::{Emulator, EmulatorConfig, RGB_LEN};
use cartridge_tests::rom;

fn frames(seed: u32, steps: usize) -> Vec<u8> {
    let mut emu =
        Emulator::new(&rom("breakout"), EmulatorConfig { seed, sticky: 0.25 }).expect("emu");
    let mut screen = vec![0u8; RGB_LEN];
    let mut all = Vec::new();
    for i in 0..steps {
        emu.act([0, 1, 3, 4][i % 4]);
        if i % 50 == 0 {
            emu.screen_rgb(&mut screen);
            all.extend_from_slice(&screen);
        }
    }
    all
}

#[test]
fn minimal_action_sets_and_lives() {
    // Gymnasium's Breakout-v4 / Pong-v4 action meanings: NOOP FIRE RIGHT LEFT (ALE 0 1 3 4);
    // Pong adds RIGHTFIRE LEFTFIRE (11 12).
    let emu = Emulator::new(&rom("breakout"), EmulatorConfig::default()).expect("emu");
    assert_eq!(emu.minimal_action_set(), [0, 1, 3, 4]);
    assert_eq!(emu.lives(), 5);
    assert!(!emu.game_over());
    let emu = Emulator::new(&rom("pong"), EmulatorConfig::default()).expect("emu");
    assert_eq!(emu.minimal_action_set(), [0, 1, 3, 4, 11, 12]);
}

#[test]
fn same_seed_same_frames_across_threads() {
    // Sticky actions on (p = 0.25) so the seed matters; each thread owns its emulator.
    let a = std::thread::spawn(|| frames(7, 1000));
    let b = std::thread::spawn(|| frames(7, 1000));
    let a = a.join().expect("thread a");
    let b = b.join().expect("thread b");
    assert_eq!(a, b);
    assert_ne!(a, frames(8, 1000), "the seed has no effect");
}

#[test]
fn zero_seed_and_bad_sticky_are_refused() {
    let r = rom("breakout");
    let e = Emulator::new(
        &r,
        EmulatorConfig {
            seed: 0,
            sticky: 0.0,
        },
    )
    .expect_err("seed 0");
    assert!(e.to_string().contains("non-zero seed"), "{e}");
    let e = Emulator::new(
        &r,
        EmulatorConfig {
            seed: 1,
            sticky: 1.0,
        },
    )
    .expect_err("sticky 1");
    assert!(e.to_string().contains("[0, 1)"), "{e}");
}

#[test]
fn infer_does_not_depend_on_libtorch() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "cartridge-infer",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(cartridge_tests::root())
        .output()
        .expect("cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && tree.contains("ort v"),
        "cargo tree failed: {tree}"
    );
    for banned in ["tch v", "torch-sys v"] {
        assert!(
            !tree.contains(banned),
            "cartridge-infer depends on {banned}"
        );
    }
}

#[test]
fn episodic_life_ends_learning_episodes_and_fire_reset_relaunches_the_ball() {
    use cartridge_infer::preprocess::{AtariConfig, AtariEnv};
    let emu = Emulator::new(&rom("breakout"), EmulatorConfig::default()).expect("emu");
    let cfg = AtariConfig {
        episodic_life: true,
        clip_reward: true,
        ..AtariConfig::default()
    };
    let mut env = AtariEnv::new(emu, cfg, 1);
    env.reset();
    // Only NOOPs: the ball FireReset launched is missed; each lost life ends a learning
    // episode but not the game. Without FIRE after each life loss Breakout would wait forever
    // and no second life would be lost.
    let mut lives_lost = 0;
    for _ in 0..5_000 {
        let s = env.step(0);
        if s.terminated {
            lives_lost += 1;
            if s.game_over {
                break;
            }
            assert_eq!(env.emulator().lives(), 5 - lives_lost);
            env.reset();
        }
    }
    assert_eq!(lives_lost, 5, "all five lives should be lost to NOOPs");
    assert!(env.emulator().game_over());
}

#[test]
fn rom_table_matches_the_emulator() {
    // Every row of the contract's ROM table against ale-py's real ROM file and the bundled
    // ALE: the file's MD5, and for each game ALE 0.6.0 supports, its minimal action set (or
    // no actions where `play` refuses the game's screen). `export --from` writes these
    // actions into converted models without loading the ROM.
    use cartridge_contract::roms::KNOWN_ROMS;
    use cartridge_infer::rom::{file_md5, RomSearch};
    let dir = rom("breakout")
        .path
        .parent()
        .expect("ROM folder")
        .to_path_buf();
    let mut checked = 0;
    for row in KNOWN_ROMS {
        let path = dir.join(format!("{}.bin", row.game));
        assert_eq!(
            file_md5(&path).expect("ale-py ROM"),
            row.md5,
            "{}",
            row.game
        );
        if !row.ale06 {
            assert!(row.minimal_actions.is_empty(), "{}", row.game);
            continue;
        }
        let rom = RomSearch::default().validate(&path).expect("known ROM");
        match Emulator::new(&rom, EmulatorConfig::default()) {
            Ok(emu) => {
                let ale: Vec<u32> = emu.minimal_action_set().iter().map(|&a| a as u32).collect();
                assert_eq!(ale, row.minimal_actions, "{}", row.game);
                checked += 1;
            }
            Err(e) => assert!(row.minimal_actions.is_empty(), "{}: {e}", row.game),
        }
    }
    // 76 games have ALE 0.6.0 settings; 10 of them have screens other than 210 lines.
    assert_eq!(checked, 66);
}
