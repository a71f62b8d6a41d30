//! The monitoring files in deploy/ against a running edge: every metric the Grafana dashboard
//! and the Prometheus alert rules name is exported by an edge (with TLS, GeoIP, tokens and the
//! control plane on, after a little traffic), and the rules pass `promtool check rules` and
//! their unit tests (`promtool test rules`; promtool comes from Debian's `prometheus`,
//! installed by `.ci/deps test`); a scrape of that edge passes `promtool check metrics`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use edge::tls::certs::generate_dev;

use crate::support::{bytes_of, client, free_port, Edge, Origin, Route};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MEDIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media");

/// Metric names in a PromQL-bearing text: `edge_*` and `process_*` identifiers.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = text[i..].starts_with("edge_") || text[i..].starts_with("process_");
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts && boundary {
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| i + n);
            names.insert(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// Sample names an exposition offers: each family's name, and a histogram's series.
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
        }
    }
    names
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(Path::new(ROOT).join("deploy/prometheus"))
        .output()
        .expect("promtool runs (Debian package `prometheus`, installed by .ci/deps test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 14 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// `promtool check metrics` on `scrape`: its lint output (empty when every name keeps the
/// conventions: `_total` on counters only, base units, no abbreviations, help on each).
fn promtool_check_metrics(scrape: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package `prometheus`, installed by .ci/deps test)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(scrape.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_check_metrics_finds_a_broken_name() {
    // The check below can fail: promtool flags a counter without `_total` and a non-base unit.
    let bad = "# HELP edge_things Things.\n# TYPE edge_things counter\nedge_things 1\n\
               # HELP edge_wait_milliseconds Wait.\n# TYPE edge_wait_milliseconds gauge\nedge_wait_milliseconds 1\n";
    let (ok, text) = promtool_check_metrics(bad);
    assert!(!ok, "{text}");
    assert!(
        text.contains("edge_things") && text.contains("_total"),
        "{text}"
    );
    assert!(text.contains("edge_wait_milliseconds"), "{text}");
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_name_is_exported() {
    let dashboard =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/edge.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<String> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(
        exprs.len() >= 20,
        "the dashboard has its queries: {}",
        exprs.len()
    );
    let mut wanted = metric_names(&exprs.join("\n"));
    let rules =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/alerts.yml")).unwrap();
    wanted.extend(metric_names(&rules));
    for must in [
        "edge_requests_total",
        "edge_upstream_healthy",
        "edge_tls_certificate_expiry_timestamp_seconds",
        "process_open_fds",
    ] {
        assert!(wanted.contains(must), "the files name {must}: {wanted:?}");
    }

    // An edge with everything on, and traffic that makes each labelled family appear.
    let origin = Origin::start().await;
    origin.route(
        "/v/seg.ts",
        Route::ok(bytes_of(10_000, 3)).header("cache-control", "max-age=60"),
    );
    origin.route("/v/uk-only/seg.ts", Route::ok(bytes_of(1_000, 4)));
    let certs = tempfile::tempdir().unwrap();
    generate_dev(certs.path(), &["127.0.0.1".into()]).unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(
        secrets.path().join("admin"),
        "deploy-test-admin-token-0123456789",
    )
    .unwrap();
    let d = certs.path().display();
    let cfg = format!(
        "[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n\
         [geo]\ndatabase = \"{ROOT}/geoip/edge-test.mmdb\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [[geo.rules]]\nprefix = \"/v/uk-only/\"\nallow = [\"GB\"]\n\
         [tokens]\ncurrent = \"demo\"\nkeys = [{{ id = \"demo\", secret_file = \"{ROOT}/certs/demo-token.TEST-KEY.hex\" }}]\n\
         public = [\"/v/\"]\n\
         [demo]\nlisten = \"127.0.0.1:{}\"\nmedia = \"{MEDIA}\"\n\
         [control]\ndatabase = \"control.db\"\nadmin_token_file = \"{}/admin\"\n\
         [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        free_port(),
        secrets.path().display(),
        origin.addr
    );
    let edge =
        Edge::start_with_config(&cfg, &format!("https = \"127.0.0.1:{}\"\n", free_port())).await;
    let c = client();
    for _ in 0..2 {
        // With a player's CMCD, for the CMCD families.
        let r = c
            .get(edge.url("/v/seg.ts"))
            .header("cmcd-object", "br=800,ot=v")
            .header("cmcd-request", "mtp=5000")
            .header("cmcd-status", "bs,su")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let refused = c
        .get(edge.url("/v/uk-only/seg.ts"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 451);
    let unsigned = c.get(edge.url("/private/seg.ts")).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(
        c.get(edge.url("/api/v1/catalog"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
            / 100,
        4
    );
    edge.await_metric(
        r#"edge_requests_total{cache="HIT",kind="content",status="200"}"#,
        1.0,
    )
    .await;

    let scrape = edge.metrics().await;
    let have = exported(&scrape);
    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named in deploy/ but not exported by the edge: {missing:?}\nexported: {have:?}"
    );
    // Every family the edge exports (foyer's and the control plane's too) keeps Prometheus'
    // naming conventions.
    let (ok, lint) = promtool_check_metrics(&scrape);
    assert!(
        ok && lint.trim().is_empty(),
        "promtool check metrics:\n{lint}"
    );
}

/// The production example config (container image, Kubernetes ConfigMap, systemd) passes
/// `edge check` with its token key in the environment, and is refused without it.
#[test]
fn production_example_config_passes_edge_check() {
    let cfg = Path::new(ROOT).join("deploy/docker/edge.toml");
    let run = |key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
        cmd.args(["check", "--config"])
            .arg(&cfg)
            .env_remove("EDGE_TOKEN_KEY_K1");
        if let Some(k) = key {
            cmd.env("EDGE_TOKEN_KEY_K1", k);
        }
        cmd.output().unwrap()
    };
    let ok = run(Some(
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    ));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: role=edge"));
    let missing = run(None);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("EDGE_TOKEN_KEY_K1"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    // The Kubernetes example builds its ConfigMap from this same file.
    let kustomization =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/k8s/kustomization.yaml")).unwrap();
    assert!(kustomization.contains("edge.toml=../docker/edge.toml"));
}

/// The systemd unit passes `systemd-analyze verify` with no warning (an unknown or misspelt
/// directive is only a warning there, so stderr must be empty of them).
#[test]
fn systemd_unit_verifies() {
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd/edge.service")).unwrap();
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/edge", env!("CARGO_BIN_EXE_edge")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian package `systemd`, installed by .ci/deps test)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("Unknown") && !err.contains("ignoring"),
        "systemd-analyze warned:\n{err}"
    );
}

/// The Kubernetes probes ask the admin port for paths a running edge answers 200.
#[tokio::test]
async fn kubernetes_probes_name_paths_the_edge_answers() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("deploy/k8s/edge.yaml")).unwrap();
    let paths: Vec<&str> = manifest
        .lines()
        .filter(|l| l.contains("httpGet:") && l.contains("port: admin"))
        .filter_map(|l| l.split("path: ").nth(1)?.split([',', ' ']).next())
        .collect();
    assert_eq!(
        paths,
        ["/readyz", "/healthz", "/healthz"],
        "readiness, liveness and startup probes"
    );
    let origin = Origin::start().await;
    let edge = Edge::start(origin.addr, "").await;
    for p in paths {
        let r = client().get(edge.admin_url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }
}
