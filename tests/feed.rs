//! Feed intake end to end: rejects with row numbers, idempotent re-polls, rescinds, date moves.

use offboard::feed::{self, PollOutcome};

use crate::helpers::{HEADER, OK_SCRIPT, TestApp, detail};

async fn rejects(t: &TestApp, batch: i64) -> Vec<(i64, Option<i64>, Option<String>, String)> {
    on_db!(t.app.store, |pool| sqlx::query_as(
        "SELECT row, line, field, reason FROM feed_rejects WHERE batch_id = $1 ORDER BY row, id",
    )
    .bind(batch)
    .fetch_all(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn malformed_rows_are_rejected_with_their_row_number_and_the_rest_goes_through() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes
        .extend_from_slice(b"e1,ann@example.org,ann,,\"Ann, the first\",2026-01-05,Terminated\r\n"); // row 1 ok
    bytes.extend_from_slice(b",nobody@example.org,nobody,,No Id,2026-01-05,Terminated\r\n"); // row 2 missing id
    bytes.extend_from_slice(b"e3,cat@example.org,cat,,Cat,2026-02-30,Terminated\n"); // row 3 bad date
    bytes.extend_from_slice(b"e4,dan@example.org,dan,,Dan,2026-01-05,On leave\n"); // row 4 unknown status
    bytes.extend_from_slice(b"e5,eve@example.org,eve,,Eve,2026-01-05\n"); // row 5 column count
    bytes.extend_from_slice(b"e6,fay@example.org,fay,,F\xffy,2026-01-05,Terminated\n"); // row 6 invalid UTF-8
    bytes.extend_from_slice(b"\n"); // blank line: not a row
    bytes
        .extend_from_slice(b"e7,gus@example.org,gus,,\"Gus\nSecond line\",2026-01-05,Terminated\n"); // row 7 ok
    bytes.extend_from_slice(
        b"'; DROP TABLE removals; --,x@example.org,x,,X,2026-01-05,Terminated\n",
    ); // row 8
    bytes.extend_from_slice(b"e9,hal@example.org,hal,,=HYPERLINK(\"x\"),2026-01-05,Terminated\n"); // row 9 ok, verbatim
    std::fs::write(t.path("feed.csv"), &bytes).unwrap();

    let s = t.poll().await;

    assert_eq!(
        (s.rows, s.accepted, s.rejected, s.new_terminations),
        (9, 3, 6, 3)
    );
    let got = rejects(&t, s.batch_id).await;
    let expected: Vec<(i64, Option<i64>, Option<String>, String)> = vec![
        (2, Some(3), Some("employee_id".into()), "missing".into()),
        (
            3,
            Some(4),
            Some("effective_date".into()),
            "invalid_date".into(),
        ),
        (4, Some(5), Some("status".into()), "unknown_status".into()),
        (5, Some(6), None, "column_count".into()),
        (
            6,
            Some(7),
            Some("display_name".into()),
            "invalid_utf8".into(),
        ),
        (
            8,
            Some(11),
            Some("employee_id".into()),
            "invalid_value".into(),
        ),
    ];
    assert_eq!(got, expected);
    let names: Vec<String> = on_db!(t.app.store, |pool| sqlx::query_scalar(
        "SELECT display_name FROM people ORDER BY employee_id"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(
        names,
        vec!["Ann, the first", "Gus\nSecond line", "=HYPERLINK(\"x\")"]
    );
    assert_eq!(t.removals().await.len(), 3);
    let batch = t.events("batch_received").await;
    assert_eq!(detail(&batch[0])["rejected"], 6);
    // The tables are still there.
    assert_eq!(t.drain().await.done, 3);
}

#[tokio::test]
async fn polling_the_same_file_twice_creates_nothing_new() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne2,bob@example.org,bob,,Bob,2030-01-05,Terminated\n");
    let first = t.poll().await;
    let audit_rows = t.audit().await.len();

    let second = t.poll().await;

    assert_eq!(first.new_terminations, 2);
    assert_eq!(second.new_terminations, 0);
    assert_eq!(second.removals_planned, 0);
    assert_eq!(t.removals().await.len(), 2);
    let terminations: i64 = on_db!(t.app.store, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM terminations"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(terminations, 2);
    // Only the second batch's own record was added.
    assert_eq!(t.audit().await.len(), audit_rows + 1);
}

#[tokio::test]
async fn an_active_row_in_a_later_poll_rescinds_and_cancels_pending_removals() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n");
    t.poll().await;
    assert_eq!(t.removal("e1").await.state, "pending");

    t.write_feed("e1,ann@example.org,ann,,Ann,,Active\n");
    let s = t.poll().await;

    assert_eq!(s.rescinded, 1);
    let r = t.removal("e1").await;
    assert_eq!(r.state, "cancelled");
    assert_eq!(r.last_error.as_deref(), Some("rescinded"));
    let cancelled = t.events("removal_cancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].employee_id.as_deref(), Some("e1"));
    assert_eq!(t.events("termination_rescinded").await.len(), 1);

    // A later termination of the same person is a new one.
    t.write_feed("e1,ann@example.org,ann,,Ann,2030-02-01,Terminated\n");
    let s = t.poll().await;
    assert_eq!(s.new_terminations, 1);
    let states: Vec<String> = t.removals().await.into_iter().map(|r| r.state).collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&"pending".to_string()) && states.contains(&"cancelled".to_string()));
}

#[tokio::test]
async fn terminated_then_active_in_one_file_creates_nothing() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed(
        "e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\ne1,ann@example.org,ann,,Ann,,Active\n",
    );
    let s = t.poll().await;
    assert_eq!(s.new_terminations, 0);
    assert!(t.removals().await.is_empty());
}

#[tokio::test]
async fn a_rehire_after_removal_is_reported_not_ignored() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n");
    t.poll().await;
    t.drain().await;
    t.write_feed("e1,ann@example.org,ann,,Ann,,Active\n");

    let s = t.poll().await;

    assert_eq!(s.rehired_after_removal, 1);
    assert_eq!(
        t.removal("e1").await.state,
        "done",
        "a done removal is not undone"
    );
    let status = offboard::status::gather(&t.app.store, t.clock.now())
        .await
        .unwrap();
    assert_eq!(status.rehired_after_removal.len(), 1);
    assert_eq!(status.rehired_after_removal[0].connectors, "app");
    assert_eq!(t.events("rehired_after_removal").await.len(), 1);
}

#[tokio::test]
async fn a_later_date_moves_pending_removals() {
    let t = TestApp::exec(OK_SCRIPT, "grace = \"1d\"").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n");
    t.poll().await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2030-03-01,Terminated\n");

    let s = t.poll().await;

    assert_eq!(s.moved, 1);
    assert_eq!(t.removal("e1").await.due_at, "2030-03-02T00:00:00.000Z");
    assert_eq!(t.events("termination_moved").await.len(), 1);
}

#[tokio::test]
async fn a_feed_that_cannot_be_read_records_a_failed_batch_and_changes_nothing() {
    let t = TestApp::exec(OK_SCRIPT, "").await;
    t.write_feed("e1,ann@example.org,ann,,Ann,2030-01-05,Terminated\n");
    t.poll().await;
    std::fs::write(t.path("feed.csv"), "id;mail;status\n1;a@b.org;Active\n").unwrap();

    let outcome = feed::poll_once(&t.app.store, &t.app.config, &t.app.http, t.clock.now())
        .await
        .unwrap();

    let PollOutcome::Failed { error, .. } = outcome else {
        panic!("expected a failed poll");
    };
    assert!(error.contains("employee_id"), "{error}");
    assert_eq!(t.removal("e1").await.state, "pending", "nobody rescinded");
    assert_eq!(t.events("batch_failed").await.len(), 1);
    std::fs::remove_file(t.path("feed.csv")).unwrap();
    let outcome = feed::poll_once(&t.app.store, &t.app.config, &t.app.http, t.clock.now())
        .await
        .unwrap();
    assert!(matches!(outcome, PollOutcome::Failed { .. }));
}

mod over_http {
    use std::os::unix::fs::PermissionsExt;

    use offboard::feed::{self, PollOutcome};
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::helpers::{HEADER, OK_SCRIPT, TestApp, config_text, write_script};

    const TOKEN: &str = "feed-token-9f8e7d";

    async fn app_for(server: &MockServer) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "remove.sh", OK_SCRIPT);
        let token = dir.path().join("feed-token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let connector = "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n";
        let text = config_text(connector).replace(
            "path = \"feed.csv\"",
            &format!(
                "url = \"{}/reports/leavers.csv?secret=1\"\nauth = {{ kind = \"bearer\", token_file = \"feed-token\" }}\ntimeout = \"2s\"",
                server.uri()
            ),
        );
        TestApp::in_dir(dir, &text).await
    }

    #[tokio::test]
    async fn a_csv_feed_is_fetched_with_the_bearer_token() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/reports/leavers.csv"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!(
                "{HEADER}e1,ann@example.org,ann,,Ann,2026-01-05,Terminated\n"
            )))
            .expect(1)
            .mount(&server)
            .await;
        let t = app_for(&server).await;

        let s = t.poll().await;

        assert_eq!(s.new_terminations, 1);
        let batch: (String, String) = on_db!(t.app.store, |pool| sqlx::query_as(
            "SELECT source_ref, content_sha256 FROM batches"
        )
        .fetch_one(pool)
        .await)
        .unwrap();
        assert!(
            !batch.0.contains("secret"),
            "the query string is not recorded: {}",
            batch.0
        );
        assert_eq!(batch.1.len(), 64);
    }

    #[tokio::test]
    async fn an_http_error_or_timeout_records_a_failed_batch_without_the_token() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)))
            .mount(&server)
            .await;
        let t = app_for(&server).await;

        for expected in ["503", "timed out"] {
            let outcome = feed::poll_once(&t.app.store, &t.app.config, &t.app.http, t.clock.now())
                .await
                .unwrap();
            let PollOutcome::Failed { error, .. } = outcome else {
                panic!("expected a failed poll");
            };
            assert!(error.contains(expected), "{error}");
        }
        let audit = t.audit().await;
        assert_eq!(
            audit.iter().filter(|r| r.event == "batch_failed").count(),
            2
        );
        let errors: Vec<String> = on_db!(t.app.store, |pool| sqlx::query_scalar(
            "SELECT error FROM batches"
        )
        .fetch_all(pool)
        .await)
        .unwrap();
        for text in errors.iter().chain(audit.iter().map(|r| &r.detail)) {
            assert!(
                !text.contains(TOKEN) && !text.contains("secret=1"),
                "{text}"
            );
        }
    }
}

mod json_over_http {
    use offboard::feed::{self, PollOutcome};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::helpers::{OK_SCRIPT, TestApp, config_text, write_script};

    async fn app_for(server: &MockServer, feed: &str, connector_extra: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "remove.sh", OK_SCRIPT);
        let connector = format!(
            "[[connector]]\nname = \"app\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n{connector_extra}\n"
        );
        let text = config_text(&connector).replace(
            "kind = \"csv\"\npath = \"feed.csv\"\nschedule = \"0 0 * * * *\"",
            &format!(
                "schedule = \"0 0 * * * *\"\n{}",
                feed.replace("SERVER", &server.uri())
            ),
        );
        let secret = dir.path().join("isu-password");
        std::fs::write(&secret, "isu-password-123\n").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        TestApp::in_dir(dir, &text).await
    }

    const WORKDAY: &str = "kind = \"json\"\nurl = \"SERVER/ccx/service/customreport2/acme/isu/Leavers?format=json\"\n\
        auth = { kind = \"basic\", username = \"ISU_offboard\", password_file = \"isu-password\" }\n\
        [feed.fields]\nemployee_id = \"/Employee_ID\"\nemail = \"/Primary_Work_Email\"\nusername = \"/User_Name\"\nupn = \"\"\n\
        display_name = \"/Worker\"\neffective_date = \"/Termination_Date\"\nstatus = \"/Worker_Status\"\n\
        [feed.attributes]\ncompany = \"/Company/Code\"\n[feed.status]\nterminated = [\"Terminated\"]\nactive = [\"Active\"]";

    fn report() -> String {
        serde_json::json!({"Report_Entry": [
            {"Employee_ID": "21001", "Worker": "Jane Doe", "Primary_Work_Email": "Jane.Doe@example.com", "User_Name": "jdoe",
             "Worker_Status": "Terminated", "Termination_Date": "2026-05-31-07:00", "Company": {"Code": "ACME-NL"},
             "Business_Process_Steps_group": [{"Order": "a"}]},
            {"Employee_ID": "21002", "Worker": "John Roe", "Primary_Work_Email": "john@example.com", "User_Name": "jroe",
             "Worker_Status": "Terminated", "Termination_Date": "2026-06-01", "Company": {"Code": "ACME-US"}},
            {"Employee_ID": 21003, "Worker_Status": "Terminated", "Termination_Date": "2026-06-01"},
            {"Employee_ID": "21004", "Worker_Status": "Active"}
        ]})
        .to_string()
    }

    #[tokio::test]
    async fn a_workday_report_is_read_through_field_pointers_and_an_unchanged_etag_is_not_reprocessed()
     {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/ccx/service/customreport2/acme/isu/Leavers"))
            .and(header("if-none-match", "\"v1\""))
            .respond_with(ResponseTemplate::new(304))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/ccx/service/customreport2/acme/isu/Leavers"))
            .and(query_param("format", "json"))
            .and(header(
                "authorization",
                "Basic SVNVX29mZmJvYXJkOmlzdS1wYXNzd29yZC0xMjM=",
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("etag", "\"v1\"")
                    .set_body_string(report()),
            )
            .expect(1)
            .mount(&server)
            .await;
        let t = app_for(
            &server,
            WORKDAY,
            "scope = { \"attributes.company\" = [\"ACME-NL\"] }",
        )
        .await;

        let first = t.poll().await;
        let second = feed::poll_once(&t.app.store, &t.app.config, &t.app.http, t.clock.now())
            .await
            .unwrap();

        assert_eq!(
            (
                first.rows,
                first.accepted,
                first.rejected,
                first.new_terminations
            ),
            (4, 3, 1, 2)
        );
        let reject: (i64, Option<String>, String) = on_db!(t.app.store, |pool| sqlx::query_as(
            "SELECT row, field, reason FROM feed_rejects"
        )
        .fetch_one(pool)
        .await)
        .unwrap();
        assert_eq!(reject, (3, Some("employee_id".into()), "wrong_type".into()));
        // Only the ACME-NL leaver is in the connector's scope; the date with an offset starts that day there.
        let r = t.removal("21001").await;
        assert_eq!(r.due_at, "2026-05-31T07:00:00.000Z");
        assert_eq!(r.account.as_deref(), Some("jane.doe@example.com"));
        assert!(
            matches!(second, PollOutcome::Unchanged { .. }),
            "{second:?}"
        );
        assert_eq!(t.removals().await.len(), 1);
        let status = offboard::status::gather(&t.app.store, t.clock.now())
            .await
            .unwrap();
        assert_eq!(status.last_successful_poll.unwrap().id, first.batch_id);
    }

    #[tokio::test]
    async fn a_server_error_or_a_truncated_document_changes_nothing_and_records_a_failed_batch() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        let truncated = &report()[..120];
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string(truncated))
            .mount(&server)
            .await;
        let t = app_for(&server, WORKDAY, "").await;

        for expected in ["HTTP 500", "JSON"] {
            let outcome = feed::poll_once(&t.app.store, &t.app.config, &t.app.http, t.clock.now())
                .await
                .unwrap();
            let PollOutcome::Failed { error, .. } = outcome else {
                panic!("expected a failed poll");
            };
            assert!(error.contains(expected), "{error}");
        }
        assert!(t.removals().await.is_empty());
        let failed: Vec<String> = on_db!(t.app.store, |pool| sqlx::query_scalar(
            "SELECT error FROM batches WHERE status = 'failed'"
        )
        .fetch_all(pool)
        .await)
        .unwrap();
        assert_eq!(failed.len(), 2);
        assert!(failed[1].starts_with("invalid_json"), "{}", failed[1]);
        let state: i64 = on_db!(t.app.store, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM feed_state"
        )
        .fetch_one(pool)
        .await)
        .unwrap();
        assert_eq!(state, 0, "no cursor or ETag is saved from a failed poll");
    }

    #[tokio::test]
    async fn a_bamboohr_style_object_of_records_is_read_with_an_incremental_cursor() {
        let server = MockServer::start().await;
        let body = serde_json::json!({"latest": "2026-06-02T19:26:23+00:00", "employees": {
            "3": {"employeeNumber": "E3", "workEmail": "ann@example.com", "status": "Inactive", "terminationDate": "2026-05-15"},
            "4": {"employeeNumber": "E4", "workEmail": "bob@example.com", "status": "Active", "terminationDate": null}
        }});
        Mock::given(method("GET"))
            .and(query_param("since", "PLACEHOLDER"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/employees/changed"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&body))
            .mount(&server)
            .await;
        let bamboo = "kind = \"json\"\nurl = \"SERVER/v1/employees/changed\"\nrecords = \"/employees\"\ncursor_param = \"since\"\n\
            [feed.fields]\nemployee_id = \"/employeeNumber\"\nemail = \"/workEmail\"\nusername = \"\"\nupn = \"\"\ndisplay_name = \"\"\n\
            effective_date = \"/terminationDate\"\nstatus = \"/status\"\n[feed.status]\nterminated = [\"Inactive\"]\nactive = [\"Active\"]";
        let t = app_for(&server, bamboo, "").await;

        let first = t.poll().await;
        t.poll().await;

        assert_eq!(first.new_terminations, 1);
        assert_eq!(t.removal("E3").await.state, "pending");
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 2);
        assert!(
            requests[0].url.query().is_none(),
            "the first poll has no cursor"
        );
        let since = requests[1]
            .url
            .query_pairs()
            .find(|(k, _)| k == "since")
            .map(|(_, v)| v.to_string());
        let saved: String = on_db!(t.app.store, |pool| sqlx::query_scalar(
            "SELECT last_success_at FROM feed_state"
        )
        .fetch_one(pool)
        .await)
        .unwrap();
        assert!(since.is_some(), "the second poll sends since=");
        assert!(since.unwrap() <= saved);
    }
}

/// A feed of several chunks (intake applies 512 employees per database command and prepares the next chunk
/// while SQLite runs one), mixing new, moved, rescinded and unchanged rows in every chunk.
#[tokio::test]
async fn a_feed_of_many_chunks_mixing_every_kind_of_row_is_applied_whole_with_consistent_ids() {
    let connectors = "[[connector]]\nname = \"wiki\"\nkind = \"exec\"\nprogram = \"remove.sh\"\n\
                      [[connector]]\nname = \"chat\"\nkind = \"exec\"\nprogram = \"remove.sh\"\ngrace = \"2d\"\n";
    let t = TestApp::with(connectors, &[("remove.sh", OK_SCRIPT)]).await;
    let text = std::fs::read_to_string(t.path("offboard.toml"))
        .unwrap()
        .replace(
            "[safety]\n",
            "[safety]\nmax_terminations_per_batch = 100000\n",
        );
    let t = TestApp::in_dir(t.dir, &text).await;
    let row = |i: usize, date: &str, status: &str| {
        format!("e{i:05},p{i}@example.org,p{i},,P {i},{date},{status}\n")
    };
    let first: String = (0..1500)
        .map(|i| row(i, "2030-01-05", "Terminated"))
        .collect();
    t.write_feed(&first);
    assert_eq!(t.poll().await.new_terminations, 1500);

    // New leavers between the known ones, so every chunk has new, moved, rescinded and unchanged rows.
    let mut second = String::new();
    let (mut moved, mut rescinded) = (0, 0);
    for i in 0..1500 {
        if i % 7 == 0 {
            moved += 1;
            second.push_str(&row(i, "2030-02-01", "Terminated"));
        } else if i % 11 == 0 {
            rescinded += 1;
            second.push_str(&row(i, "", "Active"));
        } else {
            second.push_str(&row(i, "2030-01-05", "Terminated"));
        }
        if i % 3 == 0 {
            second.push_str(&row(10_000 + i, "2030-03-01", "Terminated"));
        }
    }
    t.write_feed(&second);
    let s = t.poll().await;

    assert_eq!(
        (s.new_terminations, s.moved, s.rescinded, s.removals_planned),
        (500, moved, rescinded, 1000)
    );
    assert_eq!(
        offboard::audit::verify(&t.app.store).await.unwrap(),
        offboard::audit::Verification::Ok {
            rows: i64::try_from(t.audit().await.len()).unwrap(),
            head: t.audit().await.last().unwrap().hash.clone(),
        }
    );
    // Each new termination's audit row names the termination and the removals as they are stored.
    let created: Vec<_> = t
        .events("termination_created")
        .await
        .into_iter()
        .filter(|r| r.batch_id == Some(s.batch_id))
        .collect();
    assert_eq!(created.len(), 500);
    for r in &created {
        let employee = r.employee_id.clone().unwrap();
        let d = detail(r);
        let (stored_employee, effective_at): (String, String) =
            on_db!(t.app.store, |pool| sqlx::query_as(
                "SELECT employee_id, effective_at FROM terminations WHERE id = $1"
            )
            .bind(d["termination_id"].as_i64().unwrap())
            .fetch_one(pool)
            .await)
            .unwrap();
        assert_eq!(
            (stored_employee.as_str(), effective_at.as_str()),
            (employee.as_str(), "2030-03-01T00:00:00.000Z")
        );
        let listed = d["removals"].as_array().unwrap();
        assert_eq!(listed.len(), 2, "{d}");
        for item in listed {
            let (termination_id, connector, due_at, state): (i64, String, String, String) =
                on_db!(t.app.store, |pool| sqlx::query_as(
                    "SELECT termination_id, connector, due_at, state FROM removals WHERE id = $1",
                )
                .bind(item["removal_id"].as_i64().unwrap())
                .fetch_one(pool)
                .await)
                .unwrap();
            assert_eq!(Some(termination_id), d["termination_id"].as_i64());
            assert_eq!(connector, item["connector"].as_str().unwrap());
            assert_eq!(due_at, item["due_at"].as_str().unwrap());
            assert_eq!(state, "pending");
        }
    }
    // Moves and rescinds reached their removals; the rest stayed as they were.
    let count = |sql: &'static str| {
        let pool = t.app.store.clone();
        async move {
            on_db!(pool, |pool| sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(pool)
                .await)
            .unwrap()
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM removals WHERE state = 'cancelled'").await,
        2 * i64::try_from(rescinded).unwrap()
    );
    assert_eq!(
        count("SELECT count(*) FROM removals WHERE due_at = '2030-02-03T00:00:00.000Z'").await,
        i64::try_from(moved).unwrap(),
        "chat's removals of moved terminations are due two days after the new date"
    );
    assert_eq!(
        count("SELECT count(*) FROM removals WHERE state = 'pending'").await,
        2 * (1500 + 500 - i64::try_from(rescinded).unwrap())
    );

    // A plan lists people in the order of the feed, new leavers among moved and unchanged ones.
    let third: String = second
        .replace("2030-03-01", "2030-04-01")
        .lines()
        .enumerate()
        .map(|(n, l)| {
            if n % 5 == 0 {
                format!("{l}\n{}", row(20_000 + n, "2030-05-01", "Terminated"))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    t.write_feed(&third);
    let plan = offboard::preview::plan(&t.app.store, &t.app.config, false, t.clock.now())
        .await
        .unwrap();
    let mut order: Vec<String> = plan
        .lines
        .iter()
        .map(|i| i.line.employee_id.clone())
        .collect();
    order.dedup();
    let expected: Vec<String> = third
        .lines()
        .filter(|l| !l.contains(",Active"))
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(order, expected);
    assert_eq!(
        (plan.summary.moved, plan.summary.new_terminations),
        (500, 400)
    );
}
