//! The exported ONNX graph computes the Nature CNN and the CNN-LSTM: ONNX Runtime's outputs
//! on the exported file match a plain-Rust reference forward pass (tests/src/reference.rs)
//! within 1e-4 (the CNN-LSTM also against a step worked by hand), and Python's
//! `onnx.checker` (full_check) accepts every exported file.

use std::process::Command;

use cartridge_export::{Algo, Policy as Net};
use cartridge_infer::policy::{ModelOverrides, OnnxPolicy};
use cartridge_tests::reference::LstmStep;
use cartridge_tests::{
    random_checkpoint, random_checkpoint_with, reference, run, texts, venv_python,
};
use ndarray::{Array2, Array4};
use ort::value::TensorRef;
use rand::{Rng, SeedableRng};

fn parity(algo: Algo, game: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = random_checkpoint(algo, game, 17);
    let path = dir.path().join("m.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &path).expect("write onnx");
    let mut policy = OnnxPolicy::load(&path, 1, &ModelOverrides::default()).expect("load");

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

/// One ONNX Runtime session on an exported CNN-LSTM model (`play`'s `OnnxPolicy` covers the
/// feed-forward contract only).
struct LstmSession(ort::session::Session);

impl LstmSession {
    fn load(path: &std::path::Path) -> Self {
        cartridge_infer::runtime::init_runtime().expect("ONNX Runtime (run `make test`)");
        let env = cartridge_infer::runtime::environment().expect("environment");
        let session = ort::session::Session::builder(env)
            .expect("builder")
            .with_intra_threads(1)
            .expect("threads")
            .commit_from_file(path)
            .expect("ONNX Runtime loads the CNN-LSTM model");
        Self(session)
    }

    /// `obs` u8 `[N, 1, 84, 84]`, `h`, `c` f32 `[N, 128]` (sent as `[1, N, 128]`) ->
    /// logits, value, h_out, c_out, with the leading 1 of the states dropped.
    fn step(&mut self, obs: &Array4<u8>, h: &Array2<f32>, c: &Array2<f32>) -> LstmStep {
        let n = obs.shape()[0];
        let obs_t =
            TensorRef::from_array_view(([n, 1, 84, 84], obs.as_slice().expect("contiguous")))
                .expect("obs");
        let state = |a: &Array2<f32>| a.as_standard_layout().to_owned();
        let (h, c) = (state(h), state(c));
        let h_t = TensorRef::from_array_view(([1, n, 128], h.as_slice().expect("h"))).expect("h");
        let c_t = TensorRef::from_array_view(([1, n, 128], c.as_slice().expect("c"))).expect("c");
        let outputs = self
            .0
            .run(ort::inputs!["obs" => obs_t, "h" => h_t, "c" => c_t])
            .expect("run");
        let get = |name: &str, want: &[i64]| {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .expect("f32 output");
            assert_eq!(&shape[..], want, "{name} shape");
            data.to_vec()
        };
        let a = outputs["logits"]
            .try_extract_tensor::<f32>()
            .expect("logits")
            .0[1] as usize;
        let n64 = n as i64;
        let two = |v: Vec<f32>, cols: usize| Array2::from_shape_vec((n, cols), v).expect("shape");
        LstmStep {
            logits: two(get("logits", &[n64, a as i64]), a),
            value: two(get("value", &[n64, 1]), 1),
            h: two(get("h_out", &[1, n64, 128]), 128),
            c: two(get("c_out", &[1, n64, 128]), 128),
        }
    }
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max)
}

/// A CNN-LSTM checkpoint whose step can be done by hand: every trunk weight zero, so the
/// trunk's features are its last bias, `x = e0` (1 then 511 zeros), whatever the frame. LSTM
/// unit 0's pre-activations, each from a different parameter so that a mixed-up `W`, `R` or
/// either bias shows (PyTorch rows: i 0, f 128, g 256, o 384):
/// - i: `weight_hh[0, 0] = -ln 4` times `h[0]` (1 for env 0, 0 for env 1);
/// - f: `weight_ih[128, 0] = ln 3` times `x0 = 1`: sigmoid = 0.75;
/// - g: `bias_hh[256] = atanh 0.5`: tanh = 0.5;
/// - o: `bias_ih[384] = ln 4`: sigmoid = 0.8.
///
/// Every other pre-activation is 0 (i = f = o = 0.5, g = 0). Heads: `logits = [h0, 2 h1,
/// 0.25, 0]`, `value = 0.5 - h0`.
fn hand_lstm_checkpoint() -> cartridge_export::Checkpoint {
    let mut ckpt = random_checkpoint_with(Algo::Ppo, Net::Lstm, "breakout", 1);
    for t in ckpt.tensors.values_mut() {
        t.data.fill(0.0);
    }
    let mut set = |name: &str, index: usize, value: f32| {
        ckpt.tensors.get_mut(name).expect(name).data[index] = value;
    };
    set("network.7.bias", 0, 1.0);
    set("lstm.weight_hh_l0", 0, -(4f32.ln()));
    set("lstm.weight_ih_l0", 128 * 512, 3f32.ln());
    set("lstm.bias_hh_l0", 256, 0.5f32.atanh());
    set("lstm.bias_ih_l0", 384, 4f32.ln());
    set("actor.weight", 0, 1.0);
    set("actor.weight", 128 + 1, 2.0);
    set("actor.bias", 2, 0.25);
    set("critic.weight", 0, -1.0);
    set("critic.bias", 0, 0.5);
    ckpt
}

#[test]
fn lstm_step_by_hand_through_onnx_runtime_and_the_reference() {
    // Env 0 from h = (1, 0, ...), c = (0.8, 1, 0, ...):
    //   unit 0: i = sigmoid(-ln 4) = 0.2, f = 0.75, g = 0.5, o = 0.8
    //           c' = 0.75 * 0.8 + 0.2 * 0.5 = 0.7, h' = 0.8 * tanh(0.7) = 0.483494
    //   unit 1: i = f = o = 0.5, g = 0: c' = 0.5 * 1 = 0.5, h' = 0.5 * tanh(0.5) = 0.231059
    // Env 1 from the zero state (an episode start):
    //   unit 0: i = 0.5: c' = 0.5 * 0.5 = 0.25, h' = 0.8 * tanh(0.25) = 0.195935
    //   unit 1: c' = 0, h' = 0
    // logits = [h0, 2 h1, 0.25, 0], value = 0.5 - h0.
    // ONNX's gate order read as PyTorch's (f and o swapped) would give env 0 c' = 0.8 * 0.8
    // + 0.1 = 0.74; a bias_ih / bias_hh mix-up moves g and o.
    let ckpt = hand_lstm_checkpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hand.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &path).expect("write onnx");
    let mut session = LstmSession::load(&path);

    let obs = Array4::from_shape_fn((2, 1, 84, 84), |(n, _, i, j)| (n * 7 + i + j) as u8);
    let mut h = Array2::<f32>::zeros((2, 128));
    let mut c = Array2::<f32>::zeros((2, 128));
    h[[0, 0]] = 1.0;
    c[[0, 0]] = 0.8;
    c[[0, 1]] = 1.0;
    let mut want_h = Array2::<f32>::zeros((2, 128));
    let mut want_c = Array2::<f32>::zeros((2, 128));
    want_c[[0, 0]] = 0.7;
    want_h[[0, 0]] = 0.483_494;
    want_c[[0, 1]] = 0.5;
    want_h[[0, 1]] = 0.231_059;
    want_c[[1, 0]] = 0.25;
    want_h[[1, 0]] = 0.195_935;
    let want_logits = ndarray::arr2(&[
        [0.483_494, 2.0 * 0.231_059, 0.25, 0.0],
        [0.195_935, 0.0, 0.25, 0.0],
    ]);
    let want_value = ndarray::arr2(&[[0.5 - 0.483_494], [0.5 - 0.195_935]]);

    let by_reference = reference::forward_lstm(&ckpt.tensors, obs.view(), h.view(), c.view());
    let by_ort = session.step(&obs, &h, &c);
    for (who, got) in [("reference", &by_reference), ("ONNX Runtime", &by_ort)] {
        for (what, g, w) in [
            ("h'", &got.h, &want_h),
            ("c'", &got.c, &want_c),
            ("logits", &got.logits, &want_logits),
            ("value", &got.value, &want_value),
        ] {
            let d = max_abs_diff(g, w);
            assert!(d < 1e-5, "{who} {what}: max |got - by hand| = {d}\n{g}");
        }
    }
}

#[test]
fn lstm_onnx_matches_reference_over_a_sequence_with_a_reset() {
    // Random init, but with random LSTM and head biases (random_init's are zero, which would
    // hide a bias mix-up). 2 envs, 20 steps, each side carrying its own state; env 1's
    // episode restarts at step 10, where the caller (here) zeroes its h and c.
    let mut ckpt = random_checkpoint_with(Algo::Ppo, Net::Lstm, "breakout", 23);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for name in [
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "actor.bias",
        "critic.bias",
    ] {
        for v in &mut ckpt.tensors.get_mut(name).expect(name).data {
            *v = rng.random_range(-0.5..0.5);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lstm.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &path).expect("write onnx");
    let mut session = LstmSession::load(&path);

    let zeros = || Array2::<f32>::zeros((2, 128));
    let (mut ref_h, mut ref_c, mut ort_h, mut ort_c) = (zeros(), zeros(), zeros(), zeros());
    let mut largest_h = 0f32;
    for step in 0..20 {
        if step == 10 {
            for s in [&mut ref_h, &mut ref_c, &mut ort_h, &mut ort_c] {
                s.row_mut(1).fill(0.0);
            }
        }
        let obs = Array4::from_shape_fn((2, 1, 84, 84), |_| rng.random::<u8>());
        let want = reference::forward_lstm(&ckpt.tensors, obs.view(), ref_h.view(), ref_c.view());
        let got = session.step(&obs, &ort_h, &ort_c);
        for (what, g, w) in [
            ("logits", &got.logits, &want.logits),
            ("value", &got.value, &want.value),
            ("h_out", &got.h, &want.h),
            ("c_out", &got.c, &want.c),
        ] {
            let d = max_abs_diff(g, w);
            assert!(d < 1e-4, "step {step} {what}: max |ORT - reference| = {d}");
        }
        largest_h = want.h.iter().fold(largest_h, |m, v| m.max(v.abs()));
        (ref_h, ref_c, ort_h, ort_c) = (want.h, want.c, got.h, got.c);
    }
    // The state is not vanishingly small, so 1e-4 says something.
    assert!(largest_h > 0.05, "largest |h| {largest_h}");
}

#[test]
fn onnx_checker_accepts_the_lstm_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = random_checkpoint_with(Algo::Ppo, Net::Lstm, "breakout", 2);
    let p = dir.path().join("lstm.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &p).expect("write");
    let script = r#"
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)], m.opset_import
def sig(vs):
    return [(v.name, v.type.tensor_type.elem_type,
             [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]) for v in vs]
F, U8 = onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8
assert sig(m.graph.input) == [("obs", U8, ["batch", 1, 84, 84]), ("h", F, [1, "batch", 128]),
                              ("c", F, [1, "batch", 128])], sig(m.graph.input)
assert sig(m.graph.output) == [("logits", F, ["batch", 4]), ("value", F, ["batch", 1]),
                               ("h_out", F, [1, "batch", 128]), ("c_out", F, [1, "batch", 128])], sig(m.graph.output)
meta = {p.key: p.value for p in m.metadata_props}
assert meta["cartridge.arch"] == "nature_cnn_lstm" and meta["cartridge.frame_stack"] == "1", meta
assert meta["cartridge.recurrent"] == "lstm" and meta["cartridge.hidden_size"] == "128", meta
assert meta["cartridge.state_inputs"] == "h,c" and meta["cartridge.state_outputs"] == "h_out,c_out", meta
print("ok")
"#;
    let o = run(Command::new(venv_python()).arg("-c").arg(script).arg(&p));
    let (out, err) = texts(&o);
    assert!(o.status.success(), "onnx.checker failed:\n{out}\n{err}");
    assert_eq!(out.trim(), "ok");
}
