//! Static checks of the deployment files: `docker-compose.yml`, `docker-compose.cpu.yml` and
//! `Dockerfile`. `make test` builds and runs no image (that needs podman and root:
//! `scripts/test_image.sh` does it); these tests pin down what the files promise (GPU
//! reservation, volumes, healthcheck, the ONNX Runtime GPU build they load).

use distill_tests::repo_root;
use serde_yaml::Value;

fn compose() -> Value {
    let path = repo_root().join("docker-compose.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// The service whose command runs `teacher-server serve`.
fn teacher_service(doc: &Value) -> (&str, &Value) {
    let services = doc["services"]
        .as_mapping()
        .expect("docker-compose.yml has no `services` mapping");
    services
        .iter()
        .find_map(|(name, svc)| {
            let words = command_words(&svc["command"]);
            let runs = words
                .windows(2)
                .any(|w| w[0].ends_with("teacher-server") && w[1] == "serve");
            runs.then(|| (name.as_str().unwrap_or("?"), svc))
        })
        .expect("no service runs `teacher-server serve`")
}

/// A compose command as words (list form or a shell string).
fn command_words(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Environment as `KEY -> value`, from the mapping or the `KEY=value` list form.
fn env_of(svc: &Value) -> Vec<(String, String)> {
    match &svc["environment"] {
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).ok()?.trim().to_string(),
                };
                Some((k.as_str()?.to_string(), v))
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| {
                let (k, v) = i.as_str()?.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn compose_service_runs_the_server() {
    let doc = compose();
    let (name, svc) = teacher_service(&doc);
    let words = command_words(&svc["command"]);
    assert!(
        words.iter().any(|w| w == "--model") && words.iter().any(|w| w == "--data-dir"),
        "service {name} must pass --model and --data-dir: {words:?}"
    );
}

#[test]
fn compose_reserves_an_nvidia_gpu() {
    let doc = compose();
    let (name, svc) = teacher_service(&doc);
    let devices = svc["deploy"]["resources"]["reservations"]["devices"]
        .as_sequence()
        .unwrap_or_else(|| panic!("service {name}: no deploy.resources.reservations.devices"));
    let gpu = devices.iter().any(|d| {
        d["driver"].as_str() == Some("nvidia")
            && d["capabilities"]
                .as_sequence()
                .is_some_and(|c| c.iter().any(|x| x.as_str() == Some("gpu")))
    });
    assert!(
        gpu,
        "service {name}: no device with driver nvidia and capabilities [gpu]: {devices:?}"
    );
}

#[test]
fn compose_mounts_models_and_data() {
    let doc = compose();
    let (name, svc) = teacher_service(&doc);
    let volumes: Vec<String> = svc["volumes"]
        .as_sequence()
        .unwrap_or_else(|| panic!("service {name}: no volumes"))
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => format!(
                "{}:{}",
                other["source"].as_str().unwrap_or(""),
                other["target"].as_str().unwrap_or("")
            ),
        })
        .collect();
    let target = |v: &String| v.split(':').nth(1).unwrap_or("").to_string();
    let words = command_words(&svc["command"]);
    let arg = |flag: &str| {
        words
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1))
            .cloned()
            .unwrap_or_default()
    };
    let model = arg("--model");
    let data = arg("--data-dir");
    assert!(
        volumes
            .iter()
            .any(|v| !target(v).is_empty() && model.starts_with(&target(v))),
        "service {name}: the model {model:?} is not on a mounted volume: {volumes:?}"
    );
    assert!(
        volumes.iter().any(|v| target(v) == data),
        "service {name}: the data dir {data:?} is not a mounted volume: {volumes:?}"
    );
    let data_vol = volumes
        .iter()
        .find(|v| target(v) == data)
        .cloned()
        .unwrap_or_default();
    assert!(
        !data_vol.ends_with(":ro"),
        "the data volume must be writable: {data_vol}"
    );
}

#[test]
fn compose_healthcheck_and_port() {
    let doc = compose();
    let (name, svc) = teacher_service(&doc);
    let test = command_words(&svc["healthcheck"]["test"]).join(" ");
    assert!(
        test.contains("/health"),
        "service {name}: healthcheck does not hit /health: {test:?}"
    );
    assert!(
        test.contains(":8080"),
        "service {name}: healthcheck must use the bound port 8080: {test:?}"
    );

    let ports: Vec<String> = svc["ports"]
        .as_sequence()
        .unwrap_or_else(|| panic!("service {name}: no ports"))
        .iter()
        .map(|p| match p {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => format!(
                "{}:{}",
                other["published"].as_u64().unwrap_or(0),
                other["target"].as_u64().unwrap_or(0)
            ),
        })
        .collect();
    assert!(
        ports.iter().any(|p| p.ends_with(":8080")),
        "service {name}: container port 8080 is not published: {ports:?}"
    );

    let env = env_of(svc);
    assert!(
        env.iter().any(|(k, v)| k == "DISTILL_BIND" && v == "0.0.0.0:8080"),
        "service {name}: needs DISTILL_BIND=0.0.0.0:8080 (the server binds loopback by default): {env:?}"
    );
}

/// The `FROM` lines with `${ARG}` replaced by the defaults of the global `ARG`s (those before
/// the first `FROM`), i.e. what a build without `--build-arg` uses.
fn resolved_froms(dockerfile: &str) -> Vec<String> {
    let mut defaults: Vec<(String, String)> = Vec::new();
    let mut froms = Vec::new();
    for line in dockerfile.lines().map(str::trim_start) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("FROM ") {
            let mut l = line.to_string();
            for (k, v) in &defaults {
                l = l.replace(&format!("${{{k}}}"), v);
            }
            froms.push(l);
        } else if froms.is_empty() && upper.starts_with("ARG ") {
            if let Some((k, v)) = line[4..].trim().split_once('=') {
                defaults.push((k.to_string(), v.to_string()));
            }
        }
    }
    froms
}

#[test]
fn dockerfile_base_images_are_build_arguments_with_the_default_images() {
    let path = repo_root().join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for arg in [
        "BUILD_IMAGE=rust:",
        "RUNTIME_IMAGE=nvidia/cuda:",
        "BINARY_FROM=build",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("ARG {arg}"))),
            "Dockerfile lacks the global `ARG {arg}...`"
        );
    }
    let froms = resolved_froms(&text);
    assert!(
        froms.iter().any(|f| f.contains("scratch AS prebuilt")),
        "no `prebuilt` stage: {froms:?}"
    );
    assert!(
        text.contains("COPY --from=binary /usr/local/bin/teacher-server"),
        "the runtime stage must take the binary from the chosen stage"
    );
}

#[test]
fn the_cpu_override_runs_on_the_cpu_without_a_gpu_reservation() {
    let path = repo_root().join("docker-compose.cpu.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_yaml::from_str(&text).expect("docker-compose.cpu.yml is YAML");
    let svc = &doc["services"]["teacher-server"];
    let cmd: Vec<&str> = svc["command"]
        .as_sequence()
        .expect("command list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        cmd.windows(2).any(|w| w == ["--ep", "cpu"]),
        "the CPU override must run --ep cpu: {cmd:?}"
    );
    assert!(
        text.contains("h['provider'] == 'cpu'"),
        "its healthcheck must want provider cpu"
    );
    assert!(
        text.contains("deploy: !reset"),
        "the GPU reservation must be reset"
    );
}

#[test]
fn dockerfile_uses_the_onnxruntime_gpu_build() {
    let path = repo_root().join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let froms = resolved_froms(&text);
    assert!(
        froms.len() >= 2,
        "Dockerfile must be multi-stage (build + runtime): {froms:?}"
    );
    assert!(
        froms.iter().any(|f| f.contains("rust:")),
        "the build stage must use a rust image by default: {froms:?}"
    );
    let runtime = froms.last().map(String::as_str).unwrap_or("");
    assert!(
        runtime.contains("nvidia/cuda:13.")
            && runtime.contains("cudnn")
            && runtime.contains("runtime"),
        "the runtime stage must be an nvidia/cuda:13.x cuDNN runtime image: {runtime}"
    );
    assert!(
        text.contains("onnxruntime-gpu==1.31.1"),
        "Dockerfile must install onnxruntime-gpu==1.31.1"
    );
    let ort_env = text
        .lines()
        .find(|l| l.contains("ORT_DYLIB_PATH="))
        .unwrap_or_else(|| panic!("Dockerfile never sets ORT_DYLIB_PATH"));
    assert!(
        ort_env.contains("libonnxruntime.so.1.31.1"),
        "ORT_DYLIB_PATH must point at libonnxruntime.so.1.31.1: {ort_env}"
    );
    // Issue 11 item 4 changed this contract from `--ep auto` (which serves on CPU when CUDA
    // fails) to `--ep cuda` (which refuses to start).
    let cmd = text
        .lines()
        .rfind(|l| l.trim_start().starts_with("CMD "))
        .unwrap_or_else(|| panic!("Dockerfile has no CMD"));
    assert!(
        cmd.contains("\"--ep\", \"cuda\""),
        "the image must run with --ep cuda (fail fast, no silent CPU fallback): {cmd}"
    );
    assert!(
        text.contains("DISTILL_EP=cuda"),
        "the image's DISTILL_EP must be cuda"
    );
    assert!(
        text.contains("teacher-server"),
        "the image must contain teacher-server"
    );
}

#[test]
fn dockerfile_runs_as_a_user_owning_the_data_volume() {
    let path = repo_root().join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let runtime = text
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .unwrap_or_else(|| panic!("Dockerfile has no runtime stage"));
    let user = runtime
        .lines()
        .rev()
        .find_map(|l| l.trim_start().strip_prefix("USER "))
        .unwrap_or_else(|| panic!("the runtime stage never sets USER: it would run as root"));
    assert!(
        !matches!(user.trim(), "root" | "0" | "0:0"),
        "USER {user} is root"
    );
    assert!(
        runtime.contains("chown distill:distill /data"),
        "the data volume must belong to the server's user"
    );
    let volume_at = runtime.find("VOLUME").unwrap_or(usize::MAX);
    let chown_at = runtime.find("chown").unwrap_or(usize::MAX);
    assert!(
        chown_at < volume_at,
        "chown /data before declaring the VOLUME (later changes to it are discarded)"
    );
}

#[test]
fn compose_is_loopback_only_and_requires_a_token() {
    let doc = compose();
    let (name, svc) = teacher_service(&doc);
    for p in svc["ports"].as_sequence().into_iter().flatten() {
        let text = p
            .as_str()
            .unwrap_or_else(|| panic!("{name}: port {p:?} is not a string"));
        assert!(
            text.starts_with("127.0.0.1:"),
            "service {name}: port {text:?} is published on every interface"
        );
    }
    let env = env_of(svc);
    let token = env
        .iter()
        .find(|(k, _)| k == "DISTILL_API_TOKEN")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("service {name}: DISTILL_API_TOKEN is not passed: {env:?}"));
    assert!(
        token.starts_with("${DISTILL_API_TOKEN:?"),
        "service {name}: compose must refuse to start without a token: {token:?}"
    );
    assert!(
        !env.iter().any(|(k, _)| k == "DISTILL_ALLOW_NO_TOKEN"),
        "service {name}: must not serve unauthenticated"
    );
    let words = command_words(&svc["command"]);
    assert!(
        words.windows(2).any(|w| w[0] == "--ep" && w[1] == "cuda"),
        "service {name}: must run --ep cuda: {words:?}"
    );
    let test = command_words(&svc["healthcheck"]["test"]).join(" ");
    assert!(
        test.contains("provider") && test.contains("status"),
        "service {name}: the healthcheck must check readiness and the provider: {test:?}"
    );
}
