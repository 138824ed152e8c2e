//! `cartridge_train::tensorboard::EventWriter` read back by the `tensorboard` package itself
//! (`.venv/bin/python`, tensorboard 2.20.0 from `requirements-test.txt`), whose reader checks
//! both CRCs of every record: the values, the steps, a zero value, and a resume that appends a
//! second file whose `SessionLog START` makes TensorBoard drop the first file's events written
//! after the resumed checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cartridge_train::tensorboard::EventWriter;

fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(p.is_file(), "{} is missing: run `make test`", p.display());
    p
}

/// Every scalar series in `dir` as TensorBoard's `EventAccumulator` loads it.
fn read_scalars(dir: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tensorboard_scalars.py");
    let o = Command::new(venv_python())
        .arg(script)
        .arg(dir)
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "tensorboard could not read the events:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn tensorboard_reads_values_steps_and_a_resume() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    let mut w = EventWriter::create(dir, None).expect("create");
    for step in 1..=5u64 {
        w.scalar("losses/value_loss", step, step as f64 * 1.5)
            .expect("scalar");
    }
    w.scalar("charts/episodic_return", 2, 0.0).expect("scalar");
    w.scalar("charts/episodic_return", 4, -21.0)
        .expect("scalar");
    w.flush().expect("flush");
    let first = w.path().to_path_buf();
    drop(w);

    let got = read_scalars(dir);
    assert_eq!(
        got["losses/value_loss"],
        vec![(1, 1.5), (2, 3.0), (3, 4.5), (4, 6.0), (5, 7.5)]
    );
    assert_eq!(got["charts/episodic_return"], vec![(2, 0.0), (4, -21.0)]);

    // The run resumes from its checkpoint at step 3: steps 4 and 5 of the first file are
    // dropped, the resumed values take their place, and the first file is left as it was.
    let before = std::fs::read(&first).expect("read");
    let mut w = EventWriter::create(dir, Some(3)).expect("create");
    assert_ne!(w.path(), first);
    for step in 4..=6u64 {
        w.scalar("losses/value_loss", step, step as f64 * 10.0)
            .expect("scalar");
    }
    w.flush().expect("flush");
    drop(w);
    assert_eq!(std::fs::read(&first).expect("read"), before);
    let files = std::fs::read_dir(dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains("tfevents"))
        })
        .count();
    assert_eq!(files, 2);

    let got = read_scalars(dir);
    assert_eq!(
        got["losses/value_loss"],
        vec![
            (1, 1.5),
            (2, 3.0),
            (3, 4.5),
            (4, 40.0),
            (5, 50.0),
            (6, 60.0)
        ]
    );
    assert_eq!(got["charts/episodic_return"], vec![(2, 0.0)]);
}
