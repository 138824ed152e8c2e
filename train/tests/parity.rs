//! tch -> ONNX parity: the trained network and its exported ONNX model (run by ONNX Runtime
//! through infer) give the same logits and value on the same observations, within 1e-4.

// Test fixtures are CPU tensors built directly.
#![allow(clippy::disallowed_methods)]

use cartridge_export::{Algo, Checkpoint, Metadata};
use cartridge_infer::policy::{ModelOverrides, OnnxPolicy};
use cartridge_train::ppo::ActorCritic;
use tch::{Device, Kind, Tensor};

#[test]
fn tch_and_onnx_agree() {
    tch::manual_seed(5);
    let model = ActorCritic::new(Device::Cpu, 4, 11).expect("model");
    // Move away from the initial weights so every layer matters.
    tch::no_grad(|| {
        for p in model.params() {
            let _ = p.shallow_clone().g_add_(&(p.randn_like() * 0.05));
        }
    });
    let meta = Metadata::new(
        Algo::Ppo,
        "breakout",
        "f34f08e5eb96e500e851a80be3277a56",
        vec![0, 1, 3, 4],
    );
    let ckpt = Checkpoint {
        meta,
        tensors: model.tensors().expect("tensors"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &path).expect("onnx");

    let obs = Tensor::randint(256, [5, 4, 84, 84], (Kind::Uint8, Device::Cpu));
    let (logits, value) = tch::no_grad(|| model.forward(&obs));
    let logits: Vec<f32> = Vec::try_from(&logits.view(-1)).expect("vec");
    let value: Vec<f32> = Vec::try_from(&value.view(-1)).expect("vec");
    let bytes: Vec<u8> = Vec::try_from(&obs.view(-1)).expect("vec");

    let mut policy = OnnxPolicy::load(&path, 1, &ModelOverrides::default()).expect("policy");
    let outs = policy.forward(&bytes, 5).expect("forward");
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    assert_eq!(outs[0].name, "logits");
    assert_eq!(outs[1].name, "value");
    let dl = max_diff(&outs[0].values, &logits);
    let dv = max_diff(&outs[1].values, &value);
    assert!(dl < 1e-4 && dv < 1e-4, "logits diff {dl}, value diff {dv}");
}
