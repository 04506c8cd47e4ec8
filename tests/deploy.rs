//! What `deploy/` ships, checked with the tools operators use: the alert rules with Prometheus'
//! `promtool` (syntax and their unit tests), the dashboard's queries against the metrics a
//! running daemon exports, the Kubernetes manifests against the Kubernetes schemas
//! (`kubernetes-validate`) and against each other, and the container files against the
//! repository and Debian's package lists.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: `scripts/setup --venv` (run by `make test`) installs it"
    );
    Command::new(name)
}

fn run(cmd: &mut Command) -> Output {
    common::output_within(cmd, Duration::from_secs(120))
}

fn text(o: &Output) -> String {
    format!("{}{}", common::stdout(o), common::stderr(o))
}

/// The `nircolor_*` metric families an expression names (histogram series back to their family).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in expr.match_indices("nircolor_") {
        let name: String = expr[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        names.insert(family.to_string());
    }
    names
}

/// The metric families a real daemon exports (`# TYPE` lines of its `/metrics`).
fn exported_families() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let config = dir.path().join("one.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nweights = \"l3\"\n[rtsp]\nport = {port}\n[metrics]\nbind = \"127.0.0.1:{metrics_port}\"\n\
             [[camera]]\nid = \"c\"\nsource = {{ kind = \"test\" }}\nformat = \"GRAY8\"\nwidth = 64\nheight = 48\nfps = 10\n"
        ),
    )
    .unwrap();
    let _daemon = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let metrics = loop {
        if let Ok((status, _, body)) = common::http_get(metrics_port, "/metrics", &[]) {
            if status.contains("200") {
                break String::from_utf8(body).unwrap();
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no /metrics");
        std::thread::sleep(Duration::from_millis(100));
    };
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = common::root().join("deploy/prometheus");
    let check = run(tool("promtool")
        .args(["check", "rules", "alerts.yml"])
        .current_dir(&dir));
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("SUCCESS: 6 rules found"),
        "{}",
        text(&check)
    );
    let tests = run(tool("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&dir));
    assert!(tests.status.success(), "{}", text(&tests));
    // Every alert is exercised by a unit test.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let unit = std::fs::read_to_string(dir.join("alerts.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            unit.contains(&format!("alertname: {alert}")),
            "{alert} has no test"
        );
    }
}

#[test]
fn the_dashboard_and_alerts_query_only_what_the_daemon_exports_in_valid_promql() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("deploy/grafana/nircolor.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut exprs = Vec::new();
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        exprs.extend(
            targets
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string()),
        );
    }
    let joined = exprs.join("\n");
    for wanted in [
        "nircolor_frames_captured_total",
        "nircolor_frames_dropped_total",
        "nircolor_encoded_latency_seconds_bucket",
        "nircolor_camera_up",
        "nircolor_batches_total",
    ] {
        assert!(
            joined.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
    let rules =
        std::fs::read_to_string(common::root().join("deploy/prometheus/alerts.yml")).unwrap();
    let used: BTreeSet<String> = metric_names(&joined)
        .into_iter()
        .chain(metric_names(&rules))
        .collect();
    let exported = exported_families();
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "queried but not exported: {unknown:?}; exported: {exported:?}"
    );

    // promtool parses every dashboard query, written as recording rules with Grafana's
    // variables filled in.
    let dir = tempfile::tempdir().unwrap();
    let mut file = "groups:\n  - name: dashboard\n    rules:\n".to_string();
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$camera", ".*");
        file += &format!(
            "      - record: dashboard:query{i}\n        expr: '{}'\n",
            e.replace('\'', "''")
        );
    }
    std::fs::write(dir.path().join("dashboard.yml"), &file).unwrap();
    let check = run(tool("promtool")
        .args(["check", "rules", "dashboard.yml"])
        .current_dir(dir.path()));
    assert!(check.status.success(), "{}\n{file}", text(&check));
}

/// Every manifest under `deploy/kubernetes` as JSON documents (through the PyYAML that
/// kubernetes-validate brings).
fn manifests(files: &[&Path]) -> Vec<serde_json::Value> {
    let out = run(Command::new(common::python())
        .args([
            "-c",
            "import json, sys, yaml\nprint(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]))",
        ])
        .args(files));
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

#[test]
fn the_kubernetes_manifests_validate_and_agree_with_each_other() {
    let k8s = common::root().join("deploy/kubernetes");
    let files: Vec<std::path::PathBuf> = [
        "configmap.yaml",
        "statefulset.yaml",
        "services.yaml",
        "podmonitor.yaml",
        "cuda/statefulset.yaml",
    ]
    .iter()
    .map(|f| k8s.join(f))
    .collect();
    let validate = common::root().join(".venv/bin/kubernetes-validate");
    assert!(
        validate.exists(),
        "run `scripts/setup --venv` (make test does)"
    );
    let out = run(Command::new(&validate).arg("--strict").args(&files));
    let report = text(&out);
    assert!(
        out.status.success() && !report.contains("ERROR"),
        "{report}"
    );
    assert_eq!(
        report.matches(" passed for resource ").count(),
        7,
        "{report}"
    );

    // The validator does catch a broken manifest (so the pass above means something).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let statefulset = std::fs::read_to_string(k8s.join("statefulset.yaml")).unwrap();
    std::fs::write(
        &broken,
        statefulset.replace("replicas: 3", "replicas: three"),
    )
    .unwrap();
    let out = run(Command::new(&validate).arg("--strict").arg(&broken));
    assert!(
        !out.status.success() && text(&out).contains("ERROR"),
        "{}",
        text(&out)
    );

    let docs = manifests(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    let kind = |k: &'static str| docs.iter().filter(move |d| d["kind"] == k);
    // PodMonitor is a Prometheus Operator resource the Kubernetes schemas do not have: check
    // that it selects the pods and names their metrics port.
    for set in kind("StatefulSet") {
        let replicas = set["spec"]["replicas"].as_u64().unwrap();
        let pod = &set["spec"]["template"];
        let container = &pod["spec"]["containers"][0];
        let env = container["env"].as_array().unwrap();
        let shards = env
            .iter()
            .find(|e| e["name"] == "NIRCOLOR_SHARDS")
            .expect("NIRCOLOR_SHARDS for --shard auto");
        assert_eq!(shards["value"], replicas.to_string(), "shards = replicas");
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.windows(2).any(|w| w == ["--shard", "auto"]),
            "{args:?}"
        );
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        for i in 0..replicas {
            let pod_name = format!("{}-{i}", set["metadata"]["name"].as_str().unwrap());
            assert!(
                kind("Service").any(|s| s["spec"]["selector"]
                    ["statefulset.kubernetes.io/pod-name"]
                    == pod_name.as_str()),
                "no RTSP Service for {pod_name}"
            );
        }
        let monitor = kind("PodMonitor").next().expect("a PodMonitor");
        for (k, v) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(
                &pod["metadata"]["labels"][k], v,
                "PodMonitor selects other pods"
            );
        }
        let port = monitor["spec"]["podMetricsEndpoints"][0]["port"]
            .as_str()
            .unwrap();
        assert!(container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port));
    }
    let cuda = kind("StatefulSet")
        .find(|s| s["spec"]["template"]["spec"]["containers"][0]["image"] == "nircolor:cuda");
    assert_eq!(
        cuda.expect("the CUDA variant")["spec"]["template"]["spec"]["containers"][0]["resources"]
            ["limits"]["nvidia.com/gpu"],
        1
    );

    // The ConfigMap's pipeline is one `nircolor check` accepts (with a token file of its own
    // in place of the mounted secret), and `check --shard` spreads its cameras.
    let config = kind("ConfigMap").next().unwrap()["data"]["pipeline.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let token = dir.path().join("status-token");
    std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        config.replace(
            "/etc/nircolor/secrets/status-token",
            token.to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = common::nircolor(&["check", "--config", pipeline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = common::nircolor(&[
        "check",
        "--config",
        pipeline.to_str().unwrap(),
        "--shard",
        "3",
    ]);
    assert_eq!(common::stdout(&out).lines().count(), 3, "{}", text(&out));
}

#[test]
fn the_container_files_copy_what_exists_and_install_debian_12_packages() {
    for file in ["Dockerfile", "Dockerfile.cuda"] {
        let path = common::root().join("deploy/container").join(file);
        let dockerfile = std::fs::read_to_string(&path).unwrap();
        assert!(
            dockerfile.contains("FROM debian:12"),
            "{file}: a Debian 12 build"
        );
        // What the runtime stage copies from the build is what the build makes.
        for line in dockerfile
            .lines()
            .filter(|l| l.starts_with("COPY --from=build /src/"))
        {
            let source = line.split_whitespace().nth(2).unwrap();
            let rel = source.trim_start_matches("/src/");
            let made_by_build = rel.starts_with("target/") || rel.starts_with(".libtorch/");
            assert!(
                made_by_build || common::root().join(rel).exists(),
                "{file}: {rel} is not in the repository"
            );
        }
        // The runtime packages exist in Debian 12 under these names.
        let block = dockerfile
            .split("# RUNTIME-PACKAGES-BEGIN")
            .nth(1)
            .and_then(|t| t.split("# RUNTIME-PACKAGES-END").next())
            .unwrap();
        let packages: Vec<&str> = block
            .split_whitespace()
            .filter(|w| {
                w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && !["apt-get", "update", "install", "rm", "run"].contains(w)
                    && !w.contains('=')
                    && !w.contains('/')
            })
            .collect();
        assert!(
            packages.contains(&"gstreamer1.0-plugins-ugly"),
            "{packages:?}"
        );
        let out = run(Command::new("apt-cache").arg("show").args(&packages));
        assert!(out.status.success(), "{file}: {}", text(&out));
    }
}
