//! The command line: `edge check` on good and bad files, `edge serve` on a bad file.

use std::process::Command;

fn edge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edge"))
}

#[test]
fn check_accepts_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/edge.toml");
    let out = edge()
        .args(["check", "--config", shipped])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one-line summary: {stdout}");
    assert!(
        stdout.starts_with("ok: role=edge http=0.0.0.0:8080 admin=127.0.0.1:9090"),
        "{stdout}"
    );
}

#[test]
fn bad_configs_exit_64_naming_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[cache]\nmemory = \"lots\"\n[demo]\n",
            "cache.memory: invalid size \"lots\"",
        ),
        (
            "[server]\nlisten = \"x\"\n[demo]\n",
            "server.listen: unknown field `listen`",
        ),
        (
            "[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1\" }]\n",
            "origins[0].nodes[0].addr: \"127.0.0.1\" has no port",
        ),
        // Not a SQLite file in a folder named "mysql:".
        (
            "[tokens]\nkeys = [{ id = \"k\", secret_file = \"k.key\" }]\n\
             [control]\ndatabase = \"mysql://edge@127.0.0.1/edge\"\n[demo]\n",
            "control.database: \"mysql://edge@127.0.0.1/edge\": the mysql:// scheme is not supported",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for cmd in ["check", "serve"] {
            let out = edge().args([cmd, "--config"]).arg(&path).output().unwrap();
            assert_eq!(out.status.code(), Some(64), "{cmd} {text}");
            let err = String::from_utf8_lossy(&out.stderr);
            let prefix = format!("{}: {want}", path.display());
            assert!(
                err.starts_with(&prefix),
                "{cmd}: got {err:?}, want it to start with {prefix:?}"
            );
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }
}

#[test]
fn missing_file_is_a_config_error() {
    let out = edge()
        .args(["check", "--config", "/nonexistent/edge.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("/nonexistent/edge.toml: cannot read file"));
}

/// Key files are read at start-up, not while parsing, yet `edge check` still reads them:
/// a missing one is a config error naming its key, for `check` and `serve` alike.
#[test]
fn check_reads_secret_files_like_serve() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "[tokens]\nkeys = [{ id = \"k\", secret_file = \"missing.key\" }]\n\
         [[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n",
    )
    .unwrap();
    for cmd in ["check", "serve"] {
        let out = edge().args([cmd, "--config"]).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!(
            "{}: tokens.keys[0]: cannot read {}",
            path.display(),
            dir.path().join("missing.key").display()
        );
        assert!(err.starts_with(&want), "{cmd}: got {err:?}, want {want:?}");
    }
    std::fs::write(dir.path().join("missing.key"), "ab".repeat(32)).unwrap();
    let out = edge()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
