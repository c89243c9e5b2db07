//! The scim connector: against a real SCIM server (scim2-server from PyPI, run by the `offboard` binary) and
//! against wiremock for every failure class, the Anaplan login and the secrets.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::helpers::{HEADER, TestApp, config_text};

const TOKEN: &str = "scim-test-token-7d1f";
const PASSWORD: &str = "anaplan-test-password-4c2e";
const ANN: &str = "e1,ann@example.org,ann,,Ann Example,2026-01-05,Terminated\n";
const BOB: &str = "e2,bob@example.org,bob,,Bob Example,2026-01-05,Terminated\n";
const CAROL: &str = "e3,carol@example.org,carol,,Carol Example,2026-01-05,Terminated\n";
const DAVE: &str = "e4,dave@example.org,dave,,Dave Example,2026-01-05,Terminated\n";

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn write_secret(dir: &Path, name: &str, value: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A temp directory with the secrets, an empty feed and the config around `connectors`.
fn workspace(connectors: &str, log_level: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "scim-token", TOKEN);
    write_secret(dir.path(), "anaplan-password", PASSWORD);
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    let text =
        config_text(connectors).replace("level = \"warn\"", &format!("level = \"{log_level}\""));
    std::fs::write(dir.path().join("offboard.toml"), text).unwrap();
    dir
}

async fn app(connectors: &str) -> TestApp {
    let dir = workspace(connectors, "warn");
    let text = std::fs::read_to_string(dir.path().join("offboard.toml")).unwrap();
    TestApp::in_dir(dir, &text).await
}

fn offboard(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.join("offboard.toml"))
        .args(args)
        .env("USER", "test-operator")
        .env_remove("SUDO_USER")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(o)))
}

/// The removals of a workspace, by employee id, through the binary.
fn removals_by_employee(dir: &Path) -> std::collections::BTreeMap<String, Value> {
    let out = offboard(dir, &["removals", "--format", "json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    json_of(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["employee_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn user(id: &str, user_name: &str, active: bool, entitlements: Value) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "id": id,
        "userName": user_name,
        "active": active,
        "entitlements": entitlements,
    })
}

fn list(users: &[Value]) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": users.len(),
        "startIndex": 1,
        "itemsPerPage": users.len(),
        "Resources": users,
    })
}

fn scim_error(status: u16, scim_type: Option<&str>, detail: &str) -> Value {
    let mut e = json!({"schemas": [ERROR_SCHEMA], "status": status.to_string(), "detail": detail});
    if let Some(t) = scim_type {
        e["scimType"] = json!(t);
    }
    e
}

// ---------------------------------------------------------------------------------------------------------------
// Against the real SCIM server
// ---------------------------------------------------------------------------------------------------------------

mod real_server {
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::helpers::detail;

    /// scim2-server on a free 127.0.0.1 port with a random bearer token; killed when dropped.
    struct ScimServer {
        child: Child,
        base: String,
        token: String,
        http: reqwest::Client,
        _log: tempfile::TempDir,
    }

    fn venv() -> PathBuf {
        match std::env::var_os("OFFBOARD_TEST_VENV") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"),
        }
    }

    impl ScimServer {
        async fn start() -> ScimServer {
            let program = venv().join("bin/scim2-server");
            assert!(
                program.is_file(),
                "{} is missing: run scripts/test, which creates the test venv from tests/requirements.txt \
                 (or set OFFBOARD_TEST_VENV to a venv with scim2-server installed)",
                program.display()
            );
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let token = format!("{:032x}", rand::random::<u128>());
            let log = tempfile::tempdir().unwrap();
            let stderr = std::fs::File::create(log.path().join("server.log")).unwrap();
            let child = std::process::Command::new(&program)
                .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
                .args(["--bearer-token", &token])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap();
            let mut server = ScimServer {
                child,
                base: format!("http://127.0.0.1:{port}/v2"),
                token,
                http: reqwest::Client::new(),
                _log: log,
            };
            let started = Instant::now();
            loop {
                if let Some(status) = server.child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(server._log.path().join("server.log"))
                        .unwrap_or_default();
                    panic!("scim2-server exited with {status}: {log}");
                }
                let ready = server
                    .http
                    .get(format!("{}/Users", server.base))
                    .bearer_auth(&server.token)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    return server;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "scim2-server did not answer within 20s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        /// Creates a user through SCIM; returns its id.
        async fn create(&self, user: Value) -> String {
            let mut user = user;
            user["schemas"] = json!([USER_SCHEMA]);
            let response = self
                .http
                .post(format!("{}/Users", self.base))
                .bearer_auth(&self.token)
                .header("content-type", "application/scim+json")
                .body(user.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
            let created: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            created["id"].as_str().unwrap().to_string()
        }

        /// The user, or None after a 404.
        async fn get(&self, id: &str) -> Option<Value> {
            let response = self
                .http
                .get(format!("{}/Users/{id}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            match response.status().as_u16() {
                404 => None,
                200 => Some(serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()),
                other => panic!("GET user: {other}"),
            }
        }

        /// A workspace whose connector `app` talks to this server with its token (from a file).
        fn workspace(&self, extra: &str) -> tempfile::TempDir {
            let connector = format!(
                "[[connector]]\nname = \"app\"\nkind = \"scim\"\nbase_url = \"{}\"\nauth = {{ kind = \"bearer\", token_file = \"server-token\" }}\n{extra}\n",
                self.base
            );
            let dir = workspace(&connector, "info");
            write_secret(dir.path(), "server-token", &self.token);
            dir
        }

        fn run_once(&self, dir: &Path) -> Output {
            offboard(dir, &["run", "--once", "--format", "json"])
        }
    }

    impl Drop for ScimServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn version(user: &Value) -> String {
        user["meta"]["version"].as_str().unwrap().to_string()
    }

    fn entitlement_values(user: &Value) -> Vec<String> {
        user.get("entitlements")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| e["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// With `reactivate_on_rehire`, a rehire between stages gives the account back: deactivated on the
    /// leave date, active again after the rehire, and the deletion never runs.
    #[tokio::test]
    async fn a_rehire_after_the_deactivation_reactivates_the_account() {
        let server = ScimServer::start().await;
        let ann = server
            .create(json!({"userName": "ann", "active": true}))
            .await;
        let dir = server.workspace(
            "account = \"{username}\"\nreactivate_on_rehire = true\n\n[[connector.stage]]\naction = \"deactivate\"\nafter = \"0d\"\n\n\
             [[connector.stage]]\naction = \"delete\"\nafter = \"30d\"\n",
        );
        let text = std::fs::read_to_string(dir.path().join("offboard.toml")).unwrap();
        let t = TestApp::in_dir(dir, &text).await;
        let today = t.clock.now().format("%Y-%m-%d");
        t.write_feed(&format!("e1,ann@example.org,ann,,Ann,{today},Terminated\n"));
        t.poll().await;
        t.drain().await;
        assert_eq!(server.get(&ann).await.unwrap()["active"], false);

        t.write_feed(&format!("e1,ann@example.org,ann,,Ann,{today},Active\n"));
        let s = t.poll().await;
        assert_eq!((s.rescinded, s.reactivations), (1, 1), "{s:?}");
        t.drain().await;
        assert_eq!(
            server.get(&ann).await.unwrap()["active"],
            true,
            "access given back"
        );
        t.advance(Duration::from_secs(31 * 86_400));
        t.drain().await;
        assert!(server.get(&ann).await.is_some(), "the deletion never runs");
        let mut stages: Vec<(String, String, Option<String>)> = t
            .removals()
            .await
            .into_iter()
            .map(|r| (r.stage, r.state, r.outcome))
            .collect();
        stages.sort();
        assert_eq!(
            stages,
            [
                (
                    "deactivate".into(),
                    "done".into(),
                    Some("deactivated".into())
                ),
                (
                    "delete".into(),
                    "cancelled".into(),
                    Some("cancelled".into())
                ),
                (
                    "reactivate".into(),
                    "done".into(),
                    Some("reactivated".into())
                ),
            ]
        );
        assert_eq!(t.events("reactivation_planned").await.len(), 1);
    }

    /// Inactive accounts on a real SCIM server: the app's last-login export is read; the account unused
    /// for over 180 days is deactivated, the one in use is not, a row without a last login is rejected,
    /// and reading the same export again changes nothing.
    #[tokio::test]
    async fn accounts_unused_past_the_threshold_are_deactivated_and_a_second_scan_changes_nothing()
    {
        let server = ScimServer::start().await;
        let idle = server
            .create(json!({"userName": "idle", "active": true}))
            .await;
        let busy = server
            .create(json!({"userName": "busy", "active": true}))
            .await;
        let dir = server.workspace(
            "account = \"{username}\"\n\n[connector.inactive]\nafter = \"180d\"\npath = \"last-login.csv\"\n\
             account_column = \"userName\"\nlast_login_column = \"lastLogin\"\n",
        );
        let text = std::fs::read_to_string(dir.path().join("offboard.toml")).unwrap();
        let t = TestApp::in_dir(dir, &text).await;
        let day = |days: i64| (t.clock.now() - chrono::Duration::days(days)).to_rfc3339();
        std::fs::write(
            t.path("last-login.csv"),
            format!(
                "userName,lastLogin\nidle,{}\nbusy,{}\nghost,\n",
                day(400),
                day(10)
            ),
        )
        .unwrap();

        // The plan first: nothing written.
        let connector = &t.app.config.connectors[0];
        let (summary, lines) = offboard::feed::inactive::plan(
            &t.app.store,
            connector,
            &t.app.config.safety,
            t.clock.now(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!((summary.new_terminations, summary.rejected), (1, 1));
        assert!(
            lines
                .iter()
                .any(|l| l.employee_id == "inactive:app:idle" && l.action == "new"),
            "{lines:?}"
        );
        assert!(t.removals().await.is_empty(), "the plan writes nothing");

        offboard::app::scan_inactive(&t.app.store, &t.app.config, t.clock.now()).await;
        t.drain().await;
        assert_eq!(server.get(&idle).await.unwrap()["active"], false);
        assert_eq!(server.get(&busy).await.unwrap()["active"], true);
        let removals = t.removals().await;
        assert_eq!(removals.len(), 1, "{removals:?}");
        assert_eq!(removals[0].employee_id, "inactive:app:idle");
        assert_eq!(removals[0].outcome.as_deref(), Some("deactivated"));
        let created = t.events("termination_created").await;
        assert_eq!(detail(&created[0])["source"], "inactive");
        let rejects = t.app.store.rejected_rows(None).await.unwrap();
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].field.as_deref(), Some("last_login"));

        // Read again: the same accounts, nothing new.
        offboard::app::scan_inactive(&t.app.store, &t.app.config, t.clock.now()).await;
        assert_eq!(t.removals().await.len(), 1);

        // 180 days on, the busy account is unused too.
        t.advance(Duration::from_secs(180 * 86_400));
        offboard::app::scan_inactive(&t.app.store, &t.app.config, t.clock.now()).await;
        t.drain().await;
        assert_eq!(server.get(&busy).await.unwrap()["active"], false);
    }

    /// Stages on a real SCIM server: the leaver is deactivated on the day and deleted 30 days later,
    /// on the daemon's clock; the report's time to revoke is the deactivation's.
    #[tokio::test]
    async fn a_staged_leaver_is_deactivated_at_once_and_deleted_a_month_later() {
        let server = ScimServer::start().await;
        let ann = server
            .create(json!({"userName": "ann", "active": true}))
            .await;
        let dir = server.workspace(
            "account = \"{username}\"\n\n[[connector.stage]]\naction = \"deactivate\"\nafter = \"0d\"\n\n\
             [[connector.stage]]\naction = \"delete\"\nafter = \"30d\"\n",
        );
        let text = std::fs::read_to_string(dir.path().join("offboard.toml")).unwrap();
        let t = TestApp::in_dir(dir, &text).await;
        let today = t.clock.now().format("%Y-%m-%d");
        t.write_feed(&format!("e1,ann@example.org,ann,,Ann,{today},Terminated\n"));
        t.poll().await;

        t.drain().await;
        let now = server.get(&ann).await.expect("kept for 30 days");
        assert_eq!(now["active"], false, "access removed on the day");

        t.advance(Duration::from_secs(29 * 86_400));
        t.drain().await;
        assert!(server.get(&ann).await.is_some(), "not yet deleted");

        t.advance(Duration::from_secs(2 * 86_400));
        t.drain().await;
        assert!(server.get(&ann).await.is_none(), "deleted after 30 days");
        let mut stages: Vec<(String, String, Option<String>)> = t
            .removals()
            .await
            .into_iter()
            .map(|r| (r.stage, r.state, r.outcome))
            .collect();
        stages.sort();
        assert_eq!(
            stages,
            [
                (
                    "deactivate".into(),
                    "done".into(),
                    Some("deactivated".into())
                ),
                ("delete".into(), "done".into(), Some("removed".into())),
            ]
        );
    }

    #[tokio::test]
    async fn users_are_deactivated_and_lose_their_workspaces_and_a_second_run_changes_nothing() {
        let server = ScimServer::start().await;
        let ann = server
            .create(json!({
                "userName": "ann",
                "active": true,
                "entitlements": [
                    {"value": "ws-sales", "type": "WORKSPACE"},
                    {"value": "ws-hr", "type": "WORKSPACE"},
                    {"value": "reports", "type": "OTHER"},
                ],
            }))
            .await;
        let bob = server
            .create(json!({"userName": "bob", "active": false}))
            .await;
        // A quote and a backslash in the value must be escaped inside the filter string.
        let quoted = server
            .create(json!({"userName": "o\"brien\\x", "active": true}))
            .await;
        // Decoys whose names contain a leaver's name: never touched.
        let annabel = server
            .create(json!({"userName": "annabel", "active": true, "entitlements": [{"value": "ws-sales", "type": "WORKSPACE"}]}))
            .await;
        let ann_bob = server
            .create(json!({"userName": "ann\\bob", "active": true}))
            .await;
        let decoy_versions = (
            version(&server.get(&annabel).await.unwrap()),
            version(&server.get(&ann_bob).await.unwrap()),
            version(&server.get(&bob).await.unwrap()),
        );

        let dir = server.workspace(
            "account = \"{username}\"\nactions = [\"deactivate\", \"remove_entitlements\"]\nentitlements_path = 'entitlements[type eq \"WORKSPACE\"]'\n",
        );
        std::fs::write(
            dir.path().join("feed.csv"),
            format!(
                "{HEADER}{ANN}{BOB}e3,quoted@example.org,\"o\"\"brien\\x\",,Quoted,2026-01-05,Terminated\n{DAVE}"
            ),
        )
        .unwrap();

        let first = server.run_once(dir.path());
        assert!(first.status.success(), "{}", output_text(&first));
        let summary = json_of(&first);
        assert_eq!(summary["summary"]["drain"]["done"], 4, "{summary}");

        let ann_now = server.get(&ann).await.unwrap();
        assert_eq!(ann_now["active"], false);
        assert_eq!(
            entitlement_values(&ann_now),
            vec!["reports"],
            "only WORKSPACE entitlements go"
        );
        let quoted_now = server.get(&quoted).await.unwrap();
        assert_eq!(quoted_now["active"], false);
        let untouched = (
            version(&server.get(&annabel).await.unwrap()),
            version(&server.get(&ann_bob).await.unwrap()),
            version(&server.get(&bob).await.unwrap()),
        );
        assert_eq!(
            untouched, decoy_versions,
            "decoys and the already inactive bob are not changed"
        );
        assert_eq!(server.get(&annabel).await.unwrap()["active"], true);

        let removals = removals_by_employee(dir.path());
        assert_eq!(removals["e1"]["state"], "done");
        assert_eq!(removals["e1"]["outcome"], "deactivated");
        assert_eq!(
            removals["e2"]["outcome"], "deactivated",
            "already inactive is success"
        );
        assert_eq!(removals["e3"]["outcome"], "deactivated");
        assert_eq!(
            removals["e4"]["outcome"], "already_absent",
            "dave is not on the server"
        );

        // Bob needed only the lookup; Ann needed the lookup and both PATCHes.
        let audit = json_of(&offboard(dir.path(), &["audit", "--format", "json"]));
        let calls = |employee: &str| -> Vec<String> {
            audit
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["event"] == "vendor_call" && r["employee_id"] == employee)
                .map(|r| {
                    let detail: Value = match &r["detail"] {
                        Value::String(s) => serde_json::from_str(s).unwrap(),
                        other => other.clone(),
                    };
                    format!(
                        "{} {}",
                        detail["operation"].as_str().unwrap(),
                        r["http_status"]
                    )
                })
                .collect()
        };
        assert_eq!(calls("e2"), vec!["GET /Users?filter 200"]);
        assert_eq!(
            calls("e1"),
            vec![
                "GET /Users?filter 200",
                "PATCH /Users/{id} active 204",
                "PATCH /Users/{id} entitlements 204"
            ]
        );

        let versions = (
            version(&server.get(&ann).await.unwrap()),
            version(&server.get(&quoted).await.unwrap()),
        );
        let second = server.run_once(dir.path());
        assert!(second.status.success(), "{}", output_text(&second));
        let summary = json_of(&second);
        assert_eq!(summary["summary"]["poll"]["new_terminations"], 0);
        assert_eq!(summary["summary"]["drain"]["attempts"], 0);
        assert_eq!(
            (
                version(&server.get(&ann).await.unwrap()),
                version(&server.get(&quoted).await.unwrap()),
            ),
            versions,
            "a second run changes nothing"
        );

        // The bearer token never reaches output, removals, audit or the database file.
        let mut everything = output_text(&first) + &output_text(&second);
        everything += &output_text(&offboard(dir.path(), &["removals", "--format", "json"]));
        everything += &output_text(&offboard(dir.path(), &["audit", "--format", "json"]));
        assert!(!everything.contains(&server.token));
        for name in ["offboard.db", "offboard.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join("state").join(name)) {
                assert!(!String::from_utf8_lossy(&bytes).contains(&server.token));
            }
        }
    }

    #[tokio::test]
    async fn users_matched_by_external_id_are_deleted_and_a_second_run_changes_nothing() {
        let server = ScimServer::start().await;
        let ann = server
            .create(json!({"userName": "ann@example.org", "externalId": "e1", "active": true}))
            .await;
        let bob = server
            .create(json!({"userName": "bob@example.org", "externalId": "e2", "active": false}))
            .await;
        let stays = server
            .create(json!({"userName": "erin@example.org", "externalId": "e10", "active": true}))
            .await;
        let dir = server.workspace(
            "account = \"{employee_id}\"\nmatch = \"externalId\"\nactions = [\"delete\"]\n",
        );
        std::fs::write(
            dir.path().join("feed.csv"),
            format!("{HEADER}{ANN}{BOB}{CAROL}"),
        )
        .unwrap();

        let first = server.run_once(dir.path());
        assert!(first.status.success(), "{}", output_text(&first));

        assert!(server.get(&ann).await.is_none(), "ann is deleted");
        assert!(server.get(&bob).await.is_none(), "bob is deleted");
        let erin = server.get(&stays).await.unwrap();
        assert_eq!(erin["active"], true, "e10 is not e1");
        let removals = removals_by_employee(dir.path());
        assert_eq!(removals["e1"]["outcome"], "removed");
        assert_eq!(removals["e2"]["outcome"], "removed");
        assert_eq!(removals["e3"]["outcome"], "already_absent");

        let second = server.run_once(dir.path());
        assert!(second.status.success(), "{}", output_text(&second));
        assert_eq!(json_of(&second)["summary"]["drain"]["attempts"], 0);
        assert_eq!(server.get(&stays).await.unwrap()["meta"], erin["meta"]);
    }

    /// The service deleted ann but the answer was lost; before the retry, a new account with ann's
    /// userName appears (a rehire, a sync). The retry looks up the account it acted on by id only:
    /// it ends `removed_unconfirmed` and never touches the new account, which a lookup by userName
    /// would have found and deleted.
    #[tokio::test]
    async fn a_lost_delete_answer_ends_removed_unconfirmed_and_never_reaches_a_second_account() {
        let server = ScimServer::start().await;
        let ann = server
            .create(json!({"userName": "ann@example.org", "active": true}))
            .await;
        let origin = server.base.trim_end_matches("/v2").to_string();
        let proxy = crate::lossy::LossyProxy::start(&origin, &["DELETE /v2/Users/"], 1).await;
        let connector = format!(
            "[[connector]]\nname = \"app\"\nkind = \"scim\"\nbase_url = \"{}/v2\"\n\
             auth = {{ kind = \"bearer\", token_file = \"server-token\" }}\nactions = [\"delete\"]\n",
            proxy.uri
        );
        let dir = workspace(&connector, "warn");
        write_secret(dir.path(), "server-token", &server.token);
        let text = std::fs::read_to_string(dir.path().join("offboard.toml")).unwrap();
        let t = TestApp::in_dir(dir, &text).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1, "the lost answer is retried");
        assert_eq!(proxy.lost(), 1);
        assert!(
            server.get(&ann).await.is_none(),
            "the service did delete ann"
        );
        let newcomer = server
            .create(json!({"userName": "ann@example.org", "active": true}))
            .await;

        t.advance(Duration::from_secs(60));
        assert_eq!(t.drain().await.done, 1);
        let r = t.removal("e1").await;
        assert_eq!(r.outcome.as_deref(), Some("removed_unconfirmed"));
        assert!(
            server.get(&newcomer).await.is_some(),
            "the second account with the same userName is untouched"
        );
        let forwarded = proxy.forwarded();
        assert_eq!(
            forwarded
                .iter()
                .filter(|l| l.starts_with("DELETE "))
                .count(),
            1,
            "one DELETE reached the service: {forwarded:?}"
        );
        assert!(
            forwarded
                .last()
                .is_some_and(|l| l.starts_with(&format!("GET /v2/Users/{ann} "))),
            "the retry looked ann up by id: {forwarded:?}"
        );
    }

    #[tokio::test]
    async fn users_matched_by_id_are_deactivated_stripped_and_deleted() {
        let server = ScimServer::start().await;
        let ann = server
            .create(json!({"userName": "ann@example.org", "active": true, "entitlements": [{"value": "w", "type": "WORKSPACE"}]}))
            .await;
        let stays = server
            .create(json!({"userName": "erin@example.org", "active": true}))
            .await;
        let dir = server.workspace(
            "account = \"{username}\"\nmatch = \"id\"\nactions = [\"deactivate\", \"remove_entitlements\", \"delete\"]\n",
        );
        // The username column carries the SCIM id here, as a vendor's user export would.
        std::fs::write(
            dir.path().join("feed.csv"),
            format!(
                "{HEADER}e1,ann@example.org,{ann},,Ann,2026-01-05,Terminated\ne2,bob@example.org,0123456789abcdef0123456789abcdef,,Bob,2026-01-05,Terminated\n"
            ),
        )
        .unwrap();

        let first = server.run_once(dir.path());
        assert!(first.status.success(), "{}", output_text(&first));
        assert!(server.get(&ann).await.is_none());
        assert!(server.get(&stays).await.is_some());
        let removals = removals_by_employee(dir.path());
        assert_eq!(removals["e1"]["outcome"], "removed");
        assert_eq!(
            removals["e2"]["outcome"], "already_absent",
            "an unknown id is a 404"
        );
    }

    #[tokio::test]
    async fn probe_and_dry_run_change_nothing_on_the_server() {
        let server = ScimServer::start().await;
        let ann = server
            .create(json!({"userName": "ann@example.org", "active": true}))
            .await;
        let before = version(&server.get(&ann).await.unwrap());
        let dir = server.workspace("dry_run = true\n");
        std::fs::write(dir.path().join("feed.csv"), format!("{HEADER}{ANN}")).unwrap();

        let probe = offboard(dir.path(), &["check-config", "--probe"]);
        assert!(probe.status.success(), "{}", output_text(&probe));
        assert!(
            output_text(&probe).contains("connector app: ok (bearer token accepted; GET /Users answered a SCIM list of 1 user(s))"),
            "{}",
            output_text(&probe)
        );

        let run = server.run_once(dir.path());
        assert!(run.status.success(), "{}", output_text(&run));
        let removals = removals_by_employee(dir.path());
        assert_eq!(removals["e1"]["state"], "planned");
        let would = removals["e1"]["last_error"].as_str().unwrap();
        assert!(
            would.contains(&format!(
                "would deactivate (PATCH replace active=false) for SCIM user {ann}"
            )),
            "{would}"
        );
        assert_eq!(version(&server.get(&ann).await.unwrap()), before);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Against wiremock: request shapes and every failure class
// ---------------------------------------------------------------------------------------------------------------

mod wire {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use offboard::connectors::{CallLog, Target};
    use wiremock::matchers::{basic_auth, body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::helpers::detail;

    const SCIM: &str = "application/scim+json";

    fn bearer(uri: &str, extra: &str) -> String {
        format!(
            "[[connector]]\nname = \"app\"\nkind = \"scim\"\nbase_url = \"{uri}/scim/v2\"\nauth = {{ kind = \"bearer\", token_file = \"scim-token\" }}\n{extra}\n"
        )
    }

    fn anaplan(uri: &str, extra: &str) -> String {
        format!(
            "[[connector]]\nname = \"app\"\nkind = \"scim\"\nbase_url = \"{uri}/scim/1/0/v2\"\nauth = {{ kind = \"anaplan\", username = \"svc@example.com\", password_file = \"anaplan-password\", auth_url = \"{uri}/auth\" }}\n{extra}\n"
        )
    }

    fn scim_json(status: u16, body: &Value) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_raw(body.to_string(), SCIM)
    }

    fn lookup(value: &str) -> wiremock::MockBuilder {
        Mock::given(method("GET"))
            .and(path("/scim/v2/Users"))
            .and(query_param("filter", format!("userName eq \"{value}\"")))
    }

    fn patch(id: &str) -> wiremock::MockBuilder {
        Mock::given(method("PATCH")).and(path(format!("/scim/v2/Users/{id}")))
    }

    fn deactivate_body() -> Value {
        json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": false}]})
    }

    /// An Anaplan token answer valid for 35 minutes from now.
    fn token_answer(token: &str) -> ResponseTemplate {
        let expires = chrono::Utc::now().timestamp_millis() + 35 * 60 * 1000;
        ResponseTemplate::new(201).set_body_json(json!({
            "meta": {"validationUrl": "https://auth.example/token/validate"},
            "status": "SUCCESS",
            "statusMessage": "Login successful",
            "tokenInfo": {"expiresAt": expires, "tokenId": "0f7c", "tokenValue": token, "refreshTokenId": "9a1b"},
        }))
    }

    /// A SCIM directory answering lookups by userName (one user per name) and PATCHes with 204.
    fn directory(request: &Request) -> ResponseTemplate {
        if request.method.as_str() == "PATCH" {
            return ResponseTemplate::new(204);
        }
        let filter = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "filter")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let name: String = serde_json::from_str(filter.trim_start_matches("userName eq ")).unwrap();
        scim_json(
            200,
            &list(&[user(&format!("id-{name}"), &name, true, json!([]))]),
        )
    }

    #[tokio::test]
    async fn a_user_is_looked_up_deactivated_and_stripped_with_scim_requests() {
        let server = MockServer::start().await;
        let ann = user(
            "u-ann",
            "ann@example.org",
            true,
            json!([{"value": "w1", "type": "WORKSPACE"}]),
        );
        lookup("ann@example.org")
            .and(query_param("startIndex", "1"))
            .and(header("accept", SCIM))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(scim_json(200, &list(std::slice::from_ref(&ann))))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .and(header("content-type", SCIM))
            .and(header("accept", SCIM))
            .and(body_json(deactivate_body()))
            .respond_with(scim_json(
                200,
                &user(
                    "u-ann",
                    "ann@example.org",
                    false,
                    json!([{"value": "w1", "type": "WORKSPACE"}]),
                ),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .and(header("content-type", SCIM))
            .and(body_json(json!({
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "remove", "path": "entitlements[type eq \"WORKSPACE\"]"}],
            })))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(
            &server.uri(),
            "actions = [\"deactivate\", \"remove_entitlements\"]\nentitlements_path = 'entitlements[type eq \"WORKSPACE\"]'",
        ))
        .await;
        t.write_feed(ANN);
        t.poll().await;

        let summary = t.drain().await;

        assert_eq!(summary.done, 1);
        let r = t.removal("e1").await;
        assert_eq!(r.outcome.as_deref(), Some("deactivated"));
        let calls: Vec<(String, Option<i64>)> = t
            .events("vendor_call")
            .await
            .iter()
            .map(|c| {
                (
                    detail(c)["operation"].as_str().unwrap().to_string(),
                    c.http_status,
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("GET /Users?filter".to_string(), Some(200)),
                ("PATCH /Users/{id} active".to_string(), Some(200)),
                ("PATCH /Users/{id} entitlements".to_string(), Some(204)),
            ]
        );
        // The filter is percent-encoded with %20 (not '+') and quotes as %22.
        let requests = server.received_requests().await.unwrap();
        let query = requests[0].url.query().unwrap().to_string();
        assert!(
            query.starts_with("filter=userName%20eq%20%22ann%40example.org%22&"),
            "{query}"
        );
    }

    #[tokio::test]
    async fn quotes_and_backslashes_in_the_value_are_escaped_in_the_filter() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/scim/v2/Users"))
            .and(query_param("filter", r#"userName eq "o\"brien\\x""#))
            .respond_with(scim_json(200, &list(&[])))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "account = \"{username}\"")).await;
        t.write_feed("e1,ob@example.org,\"o\"\"brien\\x\",,O,2026-01-05,Terminated\n");
        t.poll().await;

        t.drain().await;

        let r = t.removal("e1").await;
        assert_eq!(r.state, "done");
        assert_eq!(r.outcome.as_deref(), Some("already_absent"));
    }

    #[tokio::test]
    async fn a_5xx_is_retried_and_then_succeeds() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(503, &scim_error(503, None, "maintenance")))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-ann", "ann@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1);
        let r = t.removal("e1").await;
        assert_eq!(r.state, "pending");
        assert_eq!(
            r.last_error.as_deref(),
            Some("GET /Users?filter: HTTP 503: maintenance")
        );
        t.advance(Duration::from_secs(9));
        assert_eq!(t.drain().await.done, 1);
        assert_eq!(t.removal("e1").await.attempts, 2);
    }

    #[tokio::test]
    async fn a_429_with_retry_after_is_not_retried_before_it_and_pauses_the_other_workers() {
        let server = MockServer::start().await;
        let ann_calls = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let bob_calls = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let seen = ann_calls.clone();
        lookup("ann@example.org")
            .respond_with(move |_: &Request| {
                let mut calls = seen.lock().unwrap();
                calls.push(Instant::now());
                if calls.len() == 1 {
                    ResponseTemplate::new(429).insert_header("Retry-After", "2")
                } else {
                    scim_json(
                        200,
                        &list(&[user("u-ann", "ann@example.org", true, json!([]))]),
                    )
                }
            })
            .expect(2)
            .mount(&server)
            .await;
        let seen = bob_calls.clone();
        lookup("bob@example.org")
            .respond_with(move |_: &Request| {
                seen.lock().unwrap().push(Instant::now());
                scim_json(
                    200,
                    &list(&[user("u-bob", "bob@example.org", true, json!([]))]),
                )
            })
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(204))
            .expect(2)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "concurrency = 2")).await;
        // Bob leaves in two days: not due until the test moves the clock.
        let later = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
        t.write_feed(&format!(
            "{ANN}e2,bob@example.org,bob,,Bob,{later},Terminated\n"
        ));
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1);
        let first_429 = ann_calls.lock().unwrap()[0];
        let retry = t.events("removal_retry_scheduled").await;
        let d = detail(&retry[0]);
        assert_eq!(d["retry_after_ms"], 2000);
        // The audit row is written a moment after next_due_at was set, hence the small allowance.
        assert!(
            d["retry_in_ms"].as_i64().unwrap() >= 1950,
            "Retry-After is a floor: {d}"
        );
        assert!(d["error"].as_str().unwrap().contains("HTTP 429"));
        assert_eq!(t.drain().await.attempts, 0, "not due again before 2 s");

        // Both become due; the connector is still paused by the 429, so bob's worker waits too.
        t.advance(Duration::from_secs(3 * 86_400));
        let resumed = Instant::now();
        assert!(
            resumed < first_429 + Duration::from_millis(1900),
            "the test must reach this point well within the pause"
        );
        let summary = t.drain().await;
        assert_eq!(summary.done, 2);
        let ann = ann_calls.lock().unwrap().clone();
        let bob = bob_calls.lock().unwrap().clone();
        assert!(
            ann[1] >= first_429 + Duration::from_millis(1950),
            "ann retried too early"
        );
        assert!(
            bob[0] >= first_429 + Duration::from_millis(1950),
            "bob's worker did not wait for the 429 pause"
        );
    }

    #[tokio::test]
    async fn a_timeout_is_retried() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-ann", "ann@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        // The retry looks up the account the first attempt acted on by its id, not by the filter.
        Mock::given(method("GET"))
            .and(path("/scim/v2/Users/u-ann"))
            .respond_with(scim_json(
                200,
                &user("u-ann", "ann@example.org", true, json!([])),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_secs(3)))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "timeout = \"500ms\"")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1);
        let r = t.removal("e1").await;
        assert_eq!(
            r.last_error.as_deref(),
            Some("PATCH /Users/{id} active: timed out")
        );
        t.advance(Duration::from_secs(9));
        assert_eq!(t.drain().await.done, 1);
    }

    #[tokio::test]
    async fn malformed_json_is_retried() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(ResponseTemplate::new(200).set_body_raw("{\"Resources\": [", SCIM))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-ann", "ann@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1);
        let error = t.removal("e1").await.last_error.unwrap();
        assert!(
            error.starts_with("GET /Users?filter: HTTP 200 but the body is not JSON"),
            "{error}"
        );
        t.advance(Duration::from_secs(9));
        assert_eq!(t.drain().await.done, 1);
    }

    #[tokio::test]
    async fn a_200_that_is_not_scim_is_an_error() {
        let server = MockServer::start().await;
        // JSON, but no ListResponse: retried.
        lookup("ann@example.org")
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": []})))
            .expect(1)
            .mount(&server)
            .await;
        // A SCIM error dressed as 200: classified by its own status (403: a refused credential).
        lookup("bob@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-bob", "bob@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-bob")
            .respond_with(scim_json(
                200,
                &scim_error(403, None, "caller lacks USER_ADMIN"),
            ))
            // Sent once more at once, as every refusal first is.
            .expect(2)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(&format!("{ANN}{BOB}"));
        t.poll().await;

        t.drain().await;

        let ann = t.removal("e1").await;
        assert_eq!(ann.state, "pending");
        assert!(
            ann.last_error
                .unwrap()
                .contains("HTTP 200 but the body is not a SCIM ListResponse"),
        );
        // A SCIM error's own status decides: a 403 is a refused credential, sent once more, then
        // retried once.
        let bob = t.removal("e2").await;
        assert_eq!(bob.state, "pending");
        assert!(
            bob.last_error.as_deref().unwrap().starts_with(
                "PATCH /Users/{id} active: the service answered success with a SCIM error 403: caller lacks USER_ADMIN"
            )
        );
    }

    #[tokio::test]
    async fn an_invalid_filter_is_permanent_with_the_scim_detail() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                400,
                &scim_error(
                    400,
                    Some("invalidFilter"),
                    "The specified filter syntax was invalid",
                ),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.failed, 1);
        let r = t.removal("e1").await;
        assert_eq!(r.attempts, 1);
        assert_eq!(
            r.last_error.as_deref(),
            Some(
                "GET /Users?filter: HTTP 400: invalidFilter: The specified filter syntax was invalid"
            )
        );
    }

    #[tokio::test]
    async fn two_matches_are_permanent_and_nothing_is_changed() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[
                    user("u-1", "ann@example.org", true, json!([])),
                    user("u-2", "Ann@Example.org", true, json!([])),
                ]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(204))
            .expect(0)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.failed, 1);
        assert_eq!(
            t.removal("e1").await.last_error.as_deref(),
            Some("2 accounts match, needs a human")
        );
    }

    #[tokio::test]
    async fn a_service_that_ignores_the_filter_is_not_acted_on() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-x", "someone.else@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(204))
            .expect(0)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.failed, 1);
        let error = t.removal("e1").await.last_error.unwrap();
        assert!(error.contains("refusing to act"), "{error}");
    }

    #[tokio::test]
    async fn a_404_on_lookup_by_id_is_already_absent() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/scim/v2/Users/8a8b8c8d8e8f1a2b3c4d5e6f78901234"))
            .and(header("accept", SCIM))
            .respond_with(scim_json(404, &scim_error(404, None, "User not found")))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(
            &server.uri(),
            "account = \"{username}\"\nmatch = \"id\"",
        ))
        .await;
        t.write_feed(
            "e1,ann@example.org,8a8b8c8d8e8f1a2b3c4d5e6f78901234,,Ann,2026-01-05,Terminated\n",
        );
        t.poll().await;

        assert_eq!(t.drain().await.done, 1);
        assert_eq!(
            t.removal("e1").await.outcome.as_deref(),
            Some("already_absent")
        );
    }

    #[tokio::test]
    async fn a_user_that_vanishes_before_the_patch_is_already_absent() {
        let server = MockServer::start().await;
        lookup("bob@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-bob", "bob@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-bob")
            .respond_with(scim_json(404, &scim_error(404, None, "User not found")))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(
            &server.uri(),
            "actions = [\"deactivate\", \"delete\"]",
        ))
        .await;
        t.write_feed(BOB);
        t.poll().await;

        assert_eq!(t.drain().await.done, 1);
        assert_eq!(
            t.removal("e2").await.outcome.as_deref(),
            Some("already_absent")
        );
    }

    #[tokio::test]
    async fn delete_answered_501_or_405_is_permanent_not_supported() {
        let server = MockServer::start().await;
        for (who, id) in [("ann@example.org", "u-ann"), ("bob@example.org", "u-bob")] {
            lookup(who)
                .respond_with(scim_json(200, &list(&[user(id, who, true, json!([]))])))
                .expect(1)
                .mount(&server)
                .await;
        }
        Mock::given(method("DELETE"))
            .and(path("/scim/v2/Users/u-ann"))
            .respond_with(scim_json(501, &scim_error(501, None, "Not Implemented")))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/scim/v2/Users/u-bob"))
            .respond_with(ResponseTemplate::new(405))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "actions = [\"delete\"]")).await;
        t.write_feed(&format!("{ANN}{BOB}"));
        t.poll().await;

        assert_eq!(t.drain().await.failed, 2);
        assert_eq!(
            t.removal("e1").await.last_error.as_deref(),
            Some("DELETE /Users/{id}: HTTP 501: not supported by this service (Not Implemented)")
        );
        assert_eq!(
            t.removal("e2").await.last_error.as_deref(),
            Some("DELETE /Users/{id}: HTTP 405: not supported by this service")
        );
    }

    #[tokio::test]
    async fn a_409_is_permanent_with_the_detail() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-ann", "ann@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .respond_with(scim_json(
                409,
                &scim_error(409, Some("uniqueness"), "user is locked by a pending sync"),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.failed, 1);
        assert_eq!(
            t.removal("e1").await.last_error.as_deref(),
            Some(
                "PATCH /Users/{id} active: HTTP 409: uniqueness: user is locked by a pending sync"
            )
        );
    }

    #[tokio::test]
    async fn an_inactive_user_without_entitlements_is_success_without_a_patch_and_no_target_is_success()
     {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user("u-ann", "ann@example.org", false, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-ann")
            .respond_with(ResponseTemplate::new(204))
            .expect(0)
            .mount(&server)
            .await;
        // Bob is inactive but lists entitlements; the service says there is nothing to remove.
        lookup("bob@example.org")
            .respond_with(scim_json(
                200,
                // Anaplan's examples write booleans as strings.
                &list(&[json!({
                    "schemas": [USER_SCHEMA], "id": "u-bob", "userName": "bob@example.org", "active": "False",
                    "entitlements": [{"value": "w", "type": "WORKSPACE_IDS"}],
                })]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        patch("u-bob")
            .respond_with(scim_json(
                400,
                &scim_error(400, Some("noTarget"), "no WORKSPACE entitlements"),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(
            &server.uri(),
            "actions = [\"deactivate\", \"remove_entitlements\"]\nentitlements_path = 'entitlements[type eq \"WORKSPACE\"]'",
        ))
        .await;
        t.write_feed(&format!("{ANN}{BOB}"));
        t.poll().await;

        assert_eq!(t.drain().await.done, 2);
        assert_eq!(
            t.removal("e1").await.outcome.as_deref(),
            Some("deactivated")
        );
        assert_eq!(
            t.removal("e2").await.outcome.as_deref(),
            Some("deactivated")
        );
    }

    #[tokio::test]
    async fn a_bearer_token_refused_with_401_fails_at_the_third_refusal_asking_to_check_the_credentials()
     {
        // It used to be retried every 15 minutes for ever. Now the one credential policy: sent once
        // more at once, retried once after 5 minutes, failed at the third refusal.
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(401, &scim_error(401, None, "Invalid token")))
            .expect(3)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1);
        let lookups = |calls: Vec<offboard::audit::AuditRow>| {
            calls
                .iter()
                .filter(|c| detail(c)["operation"] == "GET /Users?filter")
                .count()
        };
        assert_eq!(lookups(t.events("vendor_call").await), 2, "sent once more");
        let retry = t.events("removal_retry_scheduled").await;
        let d = detail(&retry[0]);
        assert_eq!(d["retry_after_ms"], 300_000);
        assert!(
            d["error"]
                .as_str()
                .unwrap()
                .starts_with("GET /Users?filter: HTTP 401: the service refused the bearer token"),
            "{d}"
        );

        t.advance(Duration::from_secs(6 * 60));
        t.drain().await;
        let r = t.removal("e1").await;
        assert_eq!((r.state.as_str(), r.attempts), ("failed", 2));
        assert_eq!(
            lookups(t.events("vendor_call").await),
            3,
            "the third refusal"
        );
        let error = r.last_error.unwrap();
        assert!(
            error.contains("refused the bearer token")
                && error.contains("check the connector's credentials"),
            "{error}"
        );

        // Failed means failed: later drains do not send the refused token again.
        t.advance(Duration::from_secs(60 * 60));
        t.drain().await;
        assert_eq!(t.removal("e1").await.state, "failed");
    }

    #[tokio::test]
    async fn an_anaplan_401_leads_to_exactly_one_fresh_login_and_the_call_is_sent_again() {
        let server = MockServer::start().await;
        let logins = Arc::new(Mutex::new(0));
        let counter = logins.clone();
        Mock::given(method("POST"))
            .and(path("/auth/token/authenticate"))
            .and(basic_auth("svc@example.com", PASSWORD))
            .respond_with(move |_: &Request| {
                let mut n = counter.lock().unwrap();
                *n += 1;
                token_answer(&format!("tok-{n}"))
            })
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/scim/1/0/v2/Users"))
            .and(header("authorization", "AnaplanAuthToken tok-1"))
            .respond_with(ResponseTemplate::new(401))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/scim/1/0/v2/Users"))
            .and(header("authorization", "AnaplanAuthToken tok-2"))
            .and(query_param("filter", "userName eq \"ann@example.org\""))
            .respond_with(scim_json(
                200,
                &list(&[user("8a8b", "ann@example.org", true, json!([]))]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path("/scim/1/0/v2/Users/8a8b"))
            .and(header("authorization", "AnaplanAuthToken tok-2"))
            .and(body_json(deactivate_body()))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&anaplan(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.done, 1);
        let r = t.removal("e1").await;
        assert_eq!(r.attempts, 1);
        let operations: Vec<String> = t
            .events("vendor_call")
            .await
            .iter()
            .map(|c| detail(c)["operation"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            operations,
            vec![
                "POST /token/authenticate",
                "GET /Users?filter",
                "POST /token/authenticate",
                "GET /Users?filter",
                "PATCH /Users/{id} active"
            ]
        );
    }

    #[tokio::test]
    async fn an_anaplan_401_after_the_fresh_login_is_retried_once_then_fails_at_the_third_refusal()
    {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/auth/token/authenticate"))
            .respond_with(token_answer("tok-7f3a9c0e21d4"))
            // The first login, the fresh one after the refusal, and the retry's own: a refused token
            // is never sent again.
            .expect(3)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/scim/1/0/v2/Users"))
            .respond_with(ResponseTemplate::new(401))
            .expect(3)
            .mount(&server)
            .await;
        let t = app(&anaplan(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1);
        let d = detail(&t.events("removal_retry_scheduled").await[0]);
        assert_eq!(d["retry_after_ms"], 300_000);
        let error = d["error"].as_str().unwrap();
        assert!(
            error.starts_with("GET /Users?filter: HTTP 401: the service refused the Anaplan token"),
            "{error}"
        );

        t.advance(Duration::from_secs(6 * 60));
        t.drain().await;
        let r = t.removal("e1").await;
        assert_eq!((r.state.as_str(), r.attempts), ("failed", 2));
        assert!(
            r.last_error
                .unwrap()
                .contains("check the connector's credentials")
        );
    }

    #[tokio::test]
    async fn a_refused_anaplan_login_is_tried_once_more_then_retried_once_with_the_vendor_status() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/auth/token/authenticate"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "status": "FAILURE_BAD_CREDENTIAL", "statusMessage": "Invalid credentials"
            })))
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let t = app(&anaplan(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.retried, 1);
        let d = detail(&t.events("removal_retry_scheduled").await[0]);
        assert_eq!(d["retry_after_ms"], 300_000);
        assert!(
            d["error"].as_str().unwrap().starts_with(
                "POST /token/authenticate: HTTP 401: FAILURE_BAD_CREDENTIAL: Invalid credentials: Anaplan refused the login; check the connector's auth credentials"
            ),
            "{d}"
        );
    }

    #[tokio::test]
    async fn one_anaplan_login_is_shared_by_all_workers() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/auth/token/authenticate"))
            // Slow, so every worker asks for a token while the first login is under way.
            .respond_with(token_answer("tok-shared").set_delay(Duration::from_millis(300)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::path_regex("^/scim/1/0/v2/Users"))
            .and(header("authorization", "AnaplanAuthToken tok-shared"))
            .respond_with(directory)
            .expect(8)
            .mount(&server)
            .await;
        let t = app(&anaplan(&server.uri(), "concurrency = 4\nrate = \"100/s\"")).await;
        t.write_feed(&format!("{ANN}{BOB}{CAROL}{DAVE}"));
        t.poll().await;

        assert_eq!(t.drain().await.done, 4);
    }

    #[tokio::test]
    async fn the_anaplan_token_is_refreshed_before_it_expires_on_the_daemon_clock() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/auth/token/authenticate"))
            .respond_with(token_answer("tok-1"))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/auth/token/refresh"))
            .and(header("authorization", "AnaplanAuthToken tok-1"))
            .respond_with(token_answer("tok-1b"))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::path_regex("^/scim/1/0/v2/Users"))
            .and(header("authorization", "AnaplanAuthToken tok-1"))
            .respond_with(directory)
            .expect(4)
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::path_regex("^/scim/1/0/v2/Users"))
            .and(header("authorization", "AnaplanAuthToken tok-1b"))
            .respond_with(directory)
            .expect(2)
            .mount(&server)
            .await;
        let t = app(&anaplan(&server.uri(), "")).await;

        t.write_feed(ANN);
        t.poll().await;
        assert_eq!(t.drain().await.done, 1);
        // 20 minutes later the token (35 minutes) is still good.
        t.advance(Duration::from_secs(20 * 60));
        t.write_feed(&format!("{ANN}{BOB}"));
        t.poll().await;
        assert_eq!(t.drain().await.done, 1);
        // 31 minutes in, less than five minutes are left: refreshed before use.
        t.advance(Duration::from_secs(11 * 60));
        t.write_feed(&format!("{ANN}{BOB}{CAROL}"));
        t.poll().await;
        assert_eq!(t.drain().await.done, 1);
        let operations: Vec<String> = t
            .events("vendor_call")
            .await
            .iter()
            .filter(|c| detail(c)["operation"].as_str().unwrap().starts_with("POST"))
            .map(|c| detail(c)["operation"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            operations,
            vec!["POST /token/authenticate", "POST /token/refresh"]
        );
    }

    #[tokio::test]
    async fn dry_run_resolves_and_changes_nothing() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                200,
                &list(&[user(
                    "u-ann",
                    "ann@example.org",
                    true,
                    json!([{"value": "w"}]),
                )]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(204))
            .expect(0)
            .mount(&server)
            .await;
        let t = app(&bearer(
            &server.uri(),
            "dry_run = true\nactions = [\"deactivate\", \"remove_entitlements\"]",
        ))
        .await;
        t.write_feed(ANN);
        t.poll().await;

        assert_eq!(t.drain().await.planned, 1);
        assert_eq!(
            t.removal("e1").await.last_error.as_deref(),
            Some(
                "would deactivate (PATCH replace active=false), then remove entitlements (PATCH remove) for SCIM user u-ann"
            )
        );
    }

    #[tokio::test]
    async fn the_probe_is_an_authenticated_list_of_one_user() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/scim/v2/Users"))
            .and(query_param("count", "1"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(scim_json(200, &json!({"schemas": [LIST_SCHEMA], "totalResults": 41, "Resources": [user("u", "x@example.org", true, json!([]))]})))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/scim/v2/Users"))
            .respond_with(scim_json(
                403,
                &scim_error(403, None, "USER_ADMIN role required"),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        let connector = t.app.registry.get("app").unwrap();

        assert_eq!(
            connector.probe().await.unwrap(),
            "bearer token accepted; GET /Users answered a SCIM list of 41 user(s)"
        );
        let e = connector.probe().await.unwrap_err();
        assert_eq!(
            e.reason,
            "GET /Users?count=1: HTTP 403: USER_ADMIN role required"
        );
    }

    #[tokio::test]
    async fn vendor_text_is_scrubbed_of_the_persons_identifiers() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(scim_json(
                400,
                &scim_error(
                    400,
                    Some("invalidValue"),
                    "user ANN@example.org (Ann Example) cannot be found by \"ann@example.org\"",
                ),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        t.write_feed(ANN);
        t.poll().await;
        t.drain().await;

        assert_eq!(
            t.removal("e1").await.last_error.as_deref(),
            Some(
                "GET /Users?filter: HTTP 400: invalidValue: user <person> (<person>) cannot be found by \"<person>\""
            )
        );
    }

    /// The connector used directly: a 429 pauses a call that starts afterwards on another task.
    #[tokio::test]
    async fn a_429_holds_back_a_call_started_on_another_task() {
        let server = MockServer::start().await;
        lookup("ann@example.org")
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
            .expect(1)
            .mount(&server)
            .await;
        lookup("bob@example.org")
            .respond_with(scim_json(200, &list(&[])))
            .expect(1)
            .mount(&server)
            .await;
        let t = app(&bearer(&server.uri(), "")).await;
        let connector = t.app.registry.get("app").unwrap();
        let target = |account: &str| Target {
            removal_id: 1,
            attempt: 1,
            account: account.to_string(),
            person: Default::default(),
            bound: None,
            stage: String::new(),
            calls: CallLog::default(),
        };

        let e = connector
            .resolve(&target("ann@example.org"))
            .await
            .unwrap_err();
        let throttled = Instant::now();
        assert_eq!(
            e.class,
            offboard::connectors::ErrorClass::Retryable {
                after: Some(Duration::from_secs(1))
            }
        );
        let other = tokio::spawn({
            let connector = connector.clone();
            async move {
                connector
                    .resolve(&target("bob@example.org"))
                    .await
                    .map(|_| Instant::now())
            }
        });
        let answered = other.await.unwrap().unwrap();
        assert!(
            answered >= throttled + Duration::from_millis(900),
            "the other call was not held back"
        );
    }

    #[test]
    fn secrets_never_reach_output_last_error_the_audit_log_or_the_database() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(MockServer::start());
        let token = "tok-CANARY-51f0e2";
        rt.block_on(async {
            Mock::given(method("POST"))
                .and(path("/auth/token/authenticate"))
                .and(basic_auth("svc@example.com", PASSWORD))
                .respond_with(token_answer(token))
                .expect(1)
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .and(path("/scim/1/0/v2/Users"))
                .and(header(
                    "authorization",
                    format!("AnaplanAuthToken {token}").as_str(),
                ))
                .respond_with(scim_json(
                    200,
                    &list(&[user("u-ann", "ann@example.org", true, json!([]))]),
                ))
                .expect(1)
                .mount(&server)
                .await;
            // A service that echoes the credentials back in its error detail.
            Mock::given(method("PATCH"))
                .respond_with(scim_json(
                    400,
                    &scim_error(
                        400,
                        Some("invalidSyntax"),
                        &format!("bad request with token {token} for svc@example.com:{PASSWORD}"),
                    ),
                ))
                .expect(1)
                .mount(&server)
                .await;
        });
        let dir = workspace(&anaplan(&server.uri(), ""), "debug");
        std::fs::write(dir.path().join("feed.csv"), format!("{HEADER}{ANN}")).unwrap();

        let run = offboard(dir.path(), &["run", "--once"]);
        assert_eq!(
            run.status.code(),
            Some(1),
            "the removal fails: {}",
            output_text(&run)
        );
        let removals = offboard(dir.path(), &["removals", "--format", "json"]);
        let audit = offboard(dir.path(), &["audit", "--format", "json"]);
        let last_error = json_of(&removals)[0]["last_error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            last_error.contains("bad request with token <redacted> for <redacted>:<redacted>"),
            "{last_error}"
        );
        let mut everything = output_text(&run) + &output_text(&removals) + &output_text(&audit);
        for name in ["offboard.db", "offboard.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join("state").join(name)) {
                everything += &String::from_utf8_lossy(&bytes);
            }
        }
        assert!(
            everything.contains("invalidSyntax"),
            "the failure is recorded"
        );
        for secret in [token, PASSWORD] {
            assert!(!everything.contains(secret), "{secret} leaked");
        }
    }
}
