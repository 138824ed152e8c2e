//! The `export` binary: random init with full metadata, checkpoint conversion, and bad input.

use std::process::Command;

use cartridge_export::Algo;
use cartridge_tests::{assert_clean_failure, bin, onnx_metadata, random_checkpoint, run, texts};

#[test]
fn init_random_then_convert_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let onnx = dir.path().join("r.onnx");
    let ckpt = dir.path().join("r.safetensors");
    let o = run(Command::new(bin("export"))
        .args([
            "--init",
            "random",
            "--algo",
            "dqn",
            "--game",
            "pong",
            "--actions",
            "0,1,3,4,11,12",
            "--rom-md5",
            "60e0ea3cbe0913d39803477945e9e5ec",
            "--seed",
            "7",
        ])
        .arg("-o")
        .arg(&onnx)
        .arg("--checkpoint-out")
        .arg(&ckpt));
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let bytes = std::fs::read(&onnx).expect("onnx written");
    let meta = onnx_metadata(&onnx);
    let get = |k: &str| meta.get(k).map(String::as_str);
    assert_eq!(get("cartridge.algo"), Some("dqn"));
    assert_eq!(get("cartridge.game"), Some("pong"));
    assert_eq!(get("cartridge.actions"), Some("0,1,3,4,11,12"));
    assert_eq!(get("cartridge.global_step"), Some("0"));

    // The checkpoint converts to the same bytes.
    let again = dir.path().join("again.onnx");
    let o = run(Command::new(bin("export"))
        .arg("--onnx")
        .arg(&ckpt)
        .arg("-o")
        .arg(&again));
    assert!(o.status.success(), "{:?}", texts(&o));
    assert_eq!(std::fs::read(&again).expect("read"), bytes);
}

#[test]
fn corrupt_checkpoint_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = dir.path().join("bad.safetensors");
    let good = random_checkpoint(Algo::Ppo, "breakout", 1)
        .to_bytes()
        .expect("bytes");
    std::fs::write(&ckpt, &good[..good.len() / 3]).expect("write");
    let out = dir.path().join("m.onnx");
    let o = run(Command::new(bin("export"))
        .arg("--onnx")
        .arg(&ckpt)
        .arg("-o")
        .arg(&out));
    assert_clean_failure(&o, "bad.safetensors");
    assert!(!out.exists(), "a partial model was left behind");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        1,
        "temporary files left"
    );
}

#[test]
fn random_init_without_actions_says_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(Command::new(bin("export"))
        .args([
            "--init", "random", "--algo", "ppo", "--game", "breakout", "-o",
        ])
        .arg(dir.path().join("x.onnx")));
    assert_clean_failure(&o, "--actions");
}

#[test]
fn init_random_lstm_writes_a_recurrent_model_and_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let onnx = dir.path().join("lstm.onnx");
    let ckpt = dir.path().join("lstm.safetensors");
    let args = [
        "--init",
        "random",
        "--policy",
        "lstm",
        "--algo",
        "ppo",
        "--game",
        "breakout",
        "--actions",
        "0,1,3,4",
        "--rom-md5",
        "f34f08e5eb96e500e851a80be3277a56",
    ];
    let o = run(Command::new(bin("export"))
        .args(args)
        .arg("-o")
        .arg(&onnx)
        .arg("--checkpoint-out")
        .arg(&ckpt));
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("ppo lstm"), "{out}");
    let meta = onnx_metadata(&onnx);
    let get = |k: &str| meta.get(k).map(String::as_str);
    assert_eq!(get("cartridge.arch"), Some("nature_cnn_lstm"));
    assert_eq!(get("cartridge.frame_stack"), Some("1"));
    assert_eq!(get("cartridge.recurrent"), Some("lstm"));
    assert_eq!(get("cartridge.hidden_size"), Some("128"));
    let back = cartridge_export::Checkpoint::read(&ckpt).expect("checkpoint reads");
    assert_eq!(back.tensors["lstm.weight_hh_l0"].shape, [512, 128]);

    // The checkpoint converts to the same bytes.
    let again = dir.path().join("again.onnx");
    let o = run(Command::new(bin("export"))
        .arg("--onnx")
        .arg(&ckpt)
        .arg("-o")
        .arg(&again));
    assert!(o.status.success(), "{:?}", texts(&o));
    assert_eq!(
        std::fs::read(&again).expect("read"),
        std::fs::read(&onnx).expect("read")
    );

    // The LSTM is PPO only.
    let mut dqn = args;
    dqn[5] = "dqn";
    let o = run(Command::new(bin("export"))
        .args(dqn)
        .arg("-o")
        .arg(dir.path().join("dqn.onnx")));
    assert_clean_failure(&o, "PPO only");
    assert!(!dir.path().join("dqn.onnx").exists());
}
