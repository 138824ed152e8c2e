//! `train ppo --precision`: a bf16 run writes f32 checkpoints (model and optimizer), which
//! resume under fp32 and under bf16, and under the run's last precision when --precision is
//! omitted; each process's precision is in its start line and in
//! `state.json`'s history; a bad precision is refused.

use std::path::Path;
use std::process::Command;

use cartridge_tests::{assert_clean_failure, bin, run, texts};

/// Every tensor's dtype in a safetensors file, by name.
fn dtypes(path: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(path).expect("safetensors file");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out: Vec<(String, String)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, format!("{:?}", view.dtype())))
        .collect();
    out.sort();
    out
}

fn latest(dir: &Path) -> std::path::PathBuf {
    let ckpts = dir.join("checkpoints");
    let name = std::fs::read_to_string(ckpts.join("latest")).expect("latest");
    ckpts.join(name.trim())
}

fn state(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(latest(dir).join("state.json")).expect("state.json");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn bf16_checkpoints_are_f32_and_resume_in_either_precision() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("run");
    // 2 envs x 16 steps a rollout: 2 iterations a process.
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--rom", "breakout", "--precision", "bf16"])
        .args([
            "--num-envs",
            "2",
            "--num-steps",
            "16",
            "--num-minibatches",
            "2",
        ])
        .args([
            "--total-timesteps",
            "64",
            "--eval-episodes",
            "0",
            "--threads",
            "2",
        ])
        .arg("--out")
        .arg(&dir));
    let (out, err) = texts(&o);
    assert!(o.status.success(), "bf16 run failed: {out}{err}");
    assert!(
        err.contains(", bf16 (--precision bf16; the CPU has"),
        "start line names the precision and why: {err}"
    );
    let ckpt = latest(&dir);
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let types = dtypes(&ckpt.join(file));
        assert!(!types.is_empty(), "{file} holds tensors");
        for (name, dtype) in &types {
            assert_eq!(dtype, "F32", "{file}: {name} is {dtype}");
        }
    }
    // precision None: --precision omitted, so the run's last one (bf16) goes on.
    let resume = |given: Option<&str>, total: &str| {
        let mut cmd = Command::new(bin("train"));
        cmd.args(["ppo", "--resume"]).arg(&dir);
        if let Some(p) = given {
            cmd.args(["--precision", p]);
        }
        let o = run(cmd.args(["--total-timesteps", total]));
        let precision = given.unwrap_or("bf16");
        let (out, err) = texts(&o);
        assert!(
            o.status.success(),
            "resume in {precision} failed: {out}{err}"
        );
        assert!(
            err.contains(&format!(", {precision} (--precision {precision};")),
            "{err}"
        );
    };
    resume(Some("fp32"), "128");
    resume(Some("bf16"), "192");
    resume(None, "256");
    let s = state(&dir);
    assert_eq!(s["global_step"], 256);
    let history: Vec<(u64, String)> = s["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| {
            (
                h["from_step"].as_u64().expect("from_step"),
                h["precision"].as_str().expect("precision").to_string(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (0, "bf16".to_string()),
            (64, "fp32".to_string()),
            (128, "bf16".to_string()),
            (192, "bf16".to_string())
        ]
    );
    assert_eq!(s["args"]["precision"], "bf16", "the last process's flag");

    let o = run(Command::new(bin("train"))
        .args(["ppo", "--resume"])
        .arg(&dir)
        .args(["--precision", "fp16", "--total-timesteps", "320"]));
    let err = assert_clean_failure(&o, "fp16");
    assert!(err.contains("auto") && err.contains("bf16"), "{err}");
}
