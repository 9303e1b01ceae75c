//! Real disk faults through the real server: the data dir on a small tmpfs the test mounts
//! (the machines run as root), filled up while clients store rows, then given room again; and a
//! read-only data dir. Checked: every answer is 200 or a 507 that says the disk is full (no
//! server paths), reads, scoring without a dataset and `/health` keep working, the dataset
//! recovers in place once there is room (no restart), and pyarrow then reads every
//! acknowledged row exactly once and nothing that was refused.
//!
//! Needs permission to mount (root); without it the test says so and returns — the same
//! faults are injected at exact points in `proto/tests/store_faults.rs`, which always runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use distill_tests::python::read_shards_with_pyarrow;
use distill_tests::{ids, test_model, Rng, Server};
use serde_json::{json, Value};

/// A tmpfs of a given size, mounted on a temporary folder and unmounted on drop.
struct Tmpfs {
    _holder: tempfile::TempDir,
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot.
    fn mount(size: &str) -> Result<Self, String> {
        let holder = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = holder.path().join("mnt");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Self {
            _holder: holder,
            dir,
        })
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "remount {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the filesystem holding `dir` with a file until the disk is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let block = vec![0xa5u8; 16 << 10];
    while f.write_all(&block).is_ok() {}
    // Top up byte-sized leftovers too.
    while f.write_all(&[0]).is_ok() {}
    path
}

fn body(dataset: &str, prefix: &str, range: std::ops::Range<usize>, seed: u64) -> Value {
    let n = range.len();
    json!({
        "dataset": dataset,
        "ids": ids(prefix, range),
        "inputs": {"x": Rng::new(seed).matrix(n, 16)},
    })
}

fn id_set(prefix: &str, range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

fn stored_ids(dir: &Path) -> BTreeSet<String> {
    let table = read_shards_with_pyarrow(dir).expect("pyarrow reads every shard");
    let list = table["data"]["id"].as_array().expect("id column").clone();
    let set: BTreeSet<String> = list
        .iter()
        .map(|v| v.as_str().expect("string id").to_string())
        .collect();
    assert_eq!(set.len(), list.len(), "an id is stored twice");
    set
}

#[test]
fn a_full_disk_is_answered_507_and_the_dataset_recovers_in_place_when_room_returns() {
    let fs = match Tmpfs::mount("3m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here ({why}); store_faults.rs covers the injected form");
            return;
        }
    };
    let data = fs.dir.join("data");
    let server = Server::try_start_in(
        &test_model("mlp.onnx"),
        &data,
        &["--ep", "cpu", "--shard-max-rows", "200"],
    )
    .expect("server on the tmpfs");
    let batch = 64;
    let mut acked: BTreeSet<String> = BTreeSet::new();
    for k in 0..4 {
        let r = k * batch..(k + 1) * batch;
        server
            .score(&body("d", "a", r.clone(), k as u64))
            .expect_status(200);
        acked.extend(id_set("a", r));
    }
    let filler = fill(&fs.dir);

    // Keep storing: each answer is 200 (the rows fit in what was left) or 507.
    let mut refused: Vec<std::ops::Range<usize>> = Vec::new();
    for k in 4..40 {
        let r = k * batch..(k + 1) * batch;
        let reply = server.score(&body("d", "a", r.clone(), k as u64));
        match reply.status {
            200 => acked.extend(id_set("a", r)),
            507 => {
                let e = reply.error();
                assert!(
                    e.error.code == "storage_full",
                    "507 code {:?}: {}",
                    e.error.code,
                    e.error.message
                );
                assert!(
                    e.error.message.contains("full"),
                    "message says why: {}",
                    e.error.message
                );
                assert!(
                    !e.error.message.contains(fs.dir.to_str().unwrap()),
                    "no server path in {}",
                    e.error.message
                );
                refused.push(r);
            }
            s => panic!("answer {s}: {}\nlog:\n{}", reply.text(), server.log()),
        }
    }
    assert!(
        refused.len() >= 30,
        "a full disk refuses rows ({} refused)",
        refused.len()
    );

    // While full: reads, scoring without storing, health and metrics still answer.
    server.get("/v1/datasets").expect_status(200);
    server.get("/v1/datasets/d").expect_status(200);
    server.get("/health").expect_status(200);
    server
        .score(&json!({"inputs": {"x": Rng::new(99).matrix(3, 16)}}))
        .expect_status(200);
    let metrics = server.get("/metrics").expect_status(200).text();
    assert!(metrics.contains("distill_datasets_down"), "{metrics}");

    // Room again: the same server takes the refused rows and new ones, no restart.
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    for (k, r) in refused.iter().enumerate() {
        let reply = server.score(&body("d", "a", r.clone(), 4 + k as u64));
        assert_eq!(
            reply.status,
            200,
            "{}\nlog:\n{}",
            reply.text(),
            server.log()
        );
        acked.extend(id_set("a", r.clone()));
    }
    let health = server.get("/health").expect_status(200).json();
    assert!(health.get("datasets_down").is_none(), "recovered: {health}");
    let m = server.seal("d");
    assert_eq!(m["rows"].as_u64(), Some(acked.len() as u64), "{m}");
    assert_eq!(stored_ids(&server.dataset_dir("d")), acked);
}

#[test]
fn a_read_only_data_dir_is_refused_at_start_with_a_clear_error() {
    let fs = match Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let data = fs.dir.join("data");
    {
        let mut server =
            Server::try_start_in(&test_model("mlp.onnx"), &data, &["--ep", "cpu"]).unwrap();
        server.score(&body("d", "a", 0..10, 1)).expect_status(200);
        server.seal("d");
        server.terminate(Duration::from_secs(20));
    }
    fs.remount("ro");
    let e = Server::try_start_in(&test_model("mlp.onnx"), &data, &["--ep", "cpu"])
        .err()
        .expect("a read-only data dir cannot hold a store");
    let msg = format!("{e:#}");
    assert!(msg.contains("Read-only file system"), "{msg}");
    // Nothing on disk changed: the sealed rows read back.
    assert_eq!(stored_ids(&data.join("d")), id_set("a", 0..10));
    fs.remount("rw");
}
