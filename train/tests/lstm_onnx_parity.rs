//! libtorch -> ONNX parity for the CNN-LSTM's recurrent core: `train::lstm::LstmCore`
//! (libtorch's `lstm_cell`, PyTorch's gate order) and the exported model's `LSTM` operator
//! (ONNX's gate order, blocks reordered by the exporter) take one step from the same state
//! with the same parameters and agree on `h`, `c`, logits and value within 1e-5.

// Test fixtures are CPU tensors built directly.
#![allow(clippy::disallowed_methods)]

use cartridge_export::{Checkpoint, Metadata, Policy, Tensors};
use cartridge_train::lstm::{LstmCore, LstmState};
use ort::value::TensorRef;
use tch::{nn, Device, Tensor};

const N: usize = 2;
const HIDDEN: usize = 128;

/// A deterministic value in [-0.5, 0.5) for index `k` of a tensor with salt `s`.
fn wobble(k: usize, s: usize) -> f32 {
    ((k * 37 + s * 101) % 211) as f32 / 211.0 - 0.5
}

/// The random-init CNN-LSTM with every trunk weight zero and a varied `network.7.bias`, so the
/// trunk's features are `relu(network.7.bias)` whatever the frame, and varied LSTM and head
/// biases (random_init's are zero, which would hide a bias mix-up).
fn checkpoint() -> Checkpoint {
    let meta = Metadata::new(
        cartridge_export::Algo::Ppo,
        "breakout",
        "f34f08e5eb96e500e851a80be3277a56",
        vec![0, 1, 3, 4],
    )
    .with_policy(Policy::Lstm);
    let mut ckpt = Checkpoint::random(meta).expect("random LSTM checkpoint");
    for (name, t) in ckpt.tensors.iter_mut() {
        if name.starts_with("network.") && name != "network.7.bias" {
            t.data.fill(0.0);
        }
    }
    for (s, name) in [
        "network.7.bias",
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "actor.bias",
        "critic.bias",
    ]
    .into_iter()
    .enumerate()
    {
        let t = ckpt.tensors.get_mut(name).expect(name);
        for (k, v) in t.data.iter_mut().enumerate() {
            *v = 2.0 * wobble(k, s);
        }
    }
    ckpt
}

fn tch_of(tensors: &Tensors, name: &str) -> Tensor {
    let t = &tensors[name];
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&t.data).view(shape.as_slice())
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::try_from(&t.contiguous().view(-1)).expect("f32 vec")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn lstm_core_and_the_onnx_lstm_operator_agree() {
    let ckpt = checkpoint();
    let t = &ckpt.tensors;
    let h: Vec<f32> = (0..N * HIDDEN).map(|k| wobble(k, 7)).collect();
    let c: Vec<f32> = (0..N * HIDDEN).map(|k| 3.0 * wobble(k, 8)).collect();

    // libtorch: the same features, LstmCore's step, the heads on h'.
    let vs = nn::VarStore::new(Device::Cpu);
    let core = LstmCore::new(&(vs.root() / "lstm"), 512, HIDDEN as i64);
    tch::no_grad(|| {
        for (name, var) in vs.variables() {
            var.shallow_clone().copy_(&tch_of(t, &name));
        }
    });
    assert_eq!(
        vs.variables().len(),
        4,
        "LstmCore's parameters are the four lstm.*"
    );
    let x = tch_of(t, "network.7.bias")
        .relu()
        .unsqueeze(0)
        .expand([N as i64, 512], true);
    let state = LstmState {
        h: Tensor::from_slice(&h).view([N as i64, HIDDEN as i64]),
        c: Tensor::from_slice(&c).view([N as i64, HIDDEN as i64]),
    };
    let next = tch::no_grad(|| core.step(&x, &state));
    let head = |name: &str| {
        next.h
            .matmul(&tch_of(t, &format!("{name}.weight")).tr())
            .g_add(&tch_of(t, &format!("{name}.bias")))
    };
    let (logits, value) = (head("actor"), head("critic"));

    // ONNX Runtime on the exported model.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lstm.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &path).expect("write onnx");
    cartridge_infer::runtime::init_runtime().expect("ONNX Runtime (run `make test`)");
    let env = cartridge_infer::runtime::environment().expect("environment");
    let mut session = ort::session::Session::builder(env)
        .expect("builder")
        .commit_from_file(&path)
        .expect("load");
    let obs = vec![0u8; N * 84 * 84];
    let outputs = session
        .run(ort::inputs![
            "obs" => TensorRef::from_array_view(([N, 1, 84, 84], obs.as_slice())).expect("obs"),
            "h" => TensorRef::from_array_view(([1, N, HIDDEN], h.as_slice())).expect("h"),
            "c" => TensorRef::from_array_view(([1, N, HIDDEN], c.as_slice())).expect("c"),
        ])
        .expect("run");
    let got = |name: &str| {
        let (_, data) = outputs[name].try_extract_tensor::<f32>().expect(name);
        data.to_vec()
    };

    for (name, want) in [
        ("h_out", &next.h),
        ("c_out", &next.c),
        ("logits", &logits),
        ("value", &value),
    ] {
        let d = max_diff(&got(name), &to_vec(want));
        assert!(d < 1e-5, "{name}: max |ORT - libtorch| = {d}");
    }
    // The step moved the state: the comparison is not of two unchanged inputs.
    assert!(max_diff(&to_vec(&next.c), &c) > 0.1);
}
