//! Starting the real binary as an operator would: on a public address it refuses the
//! shipped secret, an empty one or a short one, naming the setting and the command that
//! makes a good one; `lockstep secret` makes one; `auth.secret_file` supplies it; on
//! loopback the built-in defaults still serve.

use std::process::{Command, Stdio};
use std::time::Duration;

fn lockstep() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    cmd.env_remove("LOCKSTEP_AUTH__SECRET")
        .env_remove("LOCKSTEP_AUTH__SECRET_FILE")
        .env("LOCKSTEP_STORE__PATH", temp_path("db"))
        .env("LOCKSTEP_SERVER__LOG", "warn");
    cmd
}

/// A fresh path under the build's scratch directory (`target/tmp`).
fn temp_path(ext: &str) -> String {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!(
            "lockstep-startup-{}-{}.{ext}",
            std::process::id(),
            rand::random::<u64>()
        ))
        .to_string_lossy()
        .into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `serve` on a public address and returns its failure message.
fn refused(secret: Option<&str>) -> String {
    let mut cmd = lockstep();
    cmd.args(["serve", "--bind", "0.0.0.0:0"]);
    if let Some(secret) = secret {
        cmd.env("LOCKSTEP_AUTH__SECRET", secret);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "it served with secret {secret:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_public_address_refuses_weak_secrets_and_says_how_to_fix_it() {
    let shipped = refused(None);
    for needle in [
        "auth.secret",
        "LOCKSTEP_AUTH__SECRET",
        "lockstep secret",
        "0.0.0.0",
    ] {
        assert!(shipped.contains(needle), "missing {needle:?} in: {shipped}");
    }
    assert!(refused(Some("too-short")).contains("shorter than 32 bytes"));
    assert!(refused(Some("")).contains("empty"));
}

/// Starts `serve` and waits until it answers on 127.0.0.1:`port`.
fn serve(mut cmd: Command, port: u16) -> std::process::Child {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "it did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_generated_secret_in_a_file_serves_on_a_public_address() {
    let out = lockstep().arg("secret").output().unwrap();
    assert!(out.status.success());
    let secret = String::from_utf8(out.stdout).unwrap();
    let secret = secret.trim();
    assert_eq!(secret.len(), 64, "32 random bytes in hex: {secret}");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    let file = temp_path("secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let port = free_port();
    let mut cmd = lockstep();
    cmd.args(["serve", "--bind", &format!("0.0.0.0:{port}")])
        .env("LOCKSTEP_AUTH__SECRET_FILE", &file);
    let mut child = serve(cmd, port);
    // Tokens signed with that secret are accepted; ones signed with the shipped one are not.
    let token = |secret: &str| {
        lockstep::auth::Auth::new(secret).issue(&lockstep::auth::Claims {
            sub: "m".into(),
            role: lockstep_protocol::Role::Merchant,
            room: None,
            merchant: Some("m".into()),
            name: None,
            exp: lockstep::auth::unix_now() + 60,
        })
    };
    let get = |token: String| {
        let url = format!("http://127.0.0.1:{port}/api/v1/products");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(get(token(secret)), 200);
    assert_eq!(get(token(lockstep::config::DEVELOPMENT_SECRET)), 401);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn loopback_serves_on_the_defaults() {
    let port = free_port();
    let mut cmd = lockstep();
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")]);
    let mut child = serve(cmd, port);
    child.kill().unwrap();
    child.wait().unwrap();
}
