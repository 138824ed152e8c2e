//! The exported ONNX graph computes the Nature CNN: ONNX Runtime's outputs on the exported
//! file match a plain-Rust reference forward pass (tests/src/reference.rs) within 1e-4, and
//! Python's `onnx.checker` (full_check) accepts every exported file.

use std::process::Command;

use cartridge_export::Algo;
use cartridge_infer::policy::{ModelOverrides, Policy};
use cartridge_tests::{random_checkpoint, reference, run, texts, venv_python};
use ndarray::Array4;
use rand::{Rng, SeedableRng};

fn parity(algo: Algo, game: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = random_checkpoint(algo, game, 17);
    let path = dir.path().join("m.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &path).expect("write onnx");
    let mut policy = Policy::load(&path, 1, &ModelOverrides::default()).expect("load");

    let batch = 3;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let obs = Array4::from_shape_fn((batch, 4, 84, 84), |_| rng.random::<u8>());
    let (main, value) = reference::forward(&ckpt.tensors, algo, obs.view());
    let outs = policy
        .forward(obs.as_slice().expect("contiguous"), batch)
        .expect("forward");

    let names: Vec<&str> = outs.iter().map(|o| o.name.as_str()).collect();
    let want: &[&str] = match algo {
        Algo::Ppo => &["logits", "value"],
        Algo::Dqn => &["q_values"],
    };
    assert_eq!(names, want);
    let a = ckpt.meta.actions.len() as i64;
    assert_eq!(outs[0].shape, vec![batch as i64, a]);
    let max_diff = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max)
    };
    let d = max_diff(&outs[0].values, main.as_slice().expect("contiguous"));
    assert!(
        d < 1e-4,
        "{algo:?} {} max |ORT - reference| = {d}",
        outs[0].name
    );
    if let Some(v) = value {
        assert_eq!(outs[1].shape, vec![batch as i64, 1]);
        let d = max_diff(&outs[1].values, v.as_slice().expect("contiguous"));
        assert!(d < 1e-4, "value max |ORT - reference| = {d}");
    }
    // Random inputs give distinct outputs per row: the batch dimension is real.
    assert_ne!(
        outs[0].values[..a as usize],
        outs[0].values[a as usize..2 * a as usize]
    );
}

#[test]
fn ppo_onnx_matches_reference_forward() {
    parity(Algo::Ppo, "breakout");
}

#[test]
fn dqn_onnx_matches_reference_forward() {
    parity(Algo::Dqn, "pong");
}

#[test]
fn onnx_checker_accepts_exported_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (algo, game) in [
        (Algo::Ppo, "breakout"),
        (Algo::Dqn, "breakout"),
        (Algo::Ppo, "pong"),
    ] {
        let ckpt = random_checkpoint(algo, game, 2);
        let p = dir.path().join(format!("{game}-{}.onnx", algo.as_str()));
        let extra = [("cartridge.eval_episodes".to_string(), "30".to_string())];
        cartridge_export::write_onnx(&ckpt, &extra, &p).expect("write");
        paths.push(p);
    }
    let script = r#"
import sys, onnx
for p in sys.argv[1:]:
    m = onnx.load(p)
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version <= 9, m.ir_version
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)], m.opset_import
    i = m.graph.input[0]
    assert i.name == "obs" and i.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]
    assert dims == ["batch", 4, 84, 84], dims
    meta = {p.key: p.value for p in m.metadata_props}
    for k in ["algo", "game", "rom_md5", "actions", "frame_skip", "frame_stack", "obs", "global_step"]:
        assert "cartridge." + k in meta, k
    assert meta["cartridge.eval_episodes"] == "30"
    print("ok", p)
"#;
    let o = run(Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(&paths));
    let (out, err) = texts(&o);
    assert!(o.status.success(), "onnx.checker failed:\n{out}\n{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{out}"
    );
}
