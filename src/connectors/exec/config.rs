//! `kind = "exec"` settings: the program, its argument templates, its timeout and what its exit codes mean.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::ExecConnector;
use crate::clock::Clock;
use crate::config::{ConnectorConfig, Validator, WorkersConfig, check_executable};
use crate::connectors::limit::Limiter;
use crate::connectors::{Connector, KindConfig};
use crate::domain::{PERSON_FIELDS, Template};

/// Default exec `timeout`.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Default exec `exit_already_absent` codes.
pub const DEFAULT_EXIT_ALREADY_ABSENT: &[i32] = &[3];

/// Default exec `exit_permanent` codes.
pub const DEFAULT_EXIT_PERMANENT: &[i32] = &[2];

/// `kind = "exec"`: runs a local program per removal; its exit code is the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// The program (absolute; checked to exist and be executable).
    pub program: PathBuf,
    /// Arguments: templates over the person fields plus `{account}`.
    pub args: Vec<Template>,
    /// The program is killed and the attempt retried after this long.
    pub timeout: Duration,
    /// Exit codes meaning "no such account" (success: `already_absent`).
    pub exit_already_absent: Vec<i32>,
    /// Exit codes meaning a permanent failure (dead letter, no retry).
    pub exit_permanent: Vec<i32>,
}

/// The exec keys as serde reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawExec {
    program: Option<String>,
    args: Option<Vec<String>>,
    timeout: Option<String>,
    exit_already_absent: Option<Vec<i64>>,
    exit_permanent: Option<Vec<i64>>,
}

impl KindConfig for ExecConfig {
    type Raw = RawExec;

    fn stage_actions(&self) -> Vec<&'static str> {
        vec!["deactivate", "remove_entitlements", "delete"]
    }

    /// The program's removal is whatever it does; without stages it is not taken as a deletion (a
    /// legal hold does not stop it). Name a `delete` stage for one a hold must stop.
    fn deletes(&self) -> bool {
        false
    }

    fn validate(
        cx: &mut Validator<'_>,
        prefix: &str,
        raw: RawExec,
        workers: &WorkersConfig,
    ) -> Option<ExecConfig> {
        let before = cx.problem_count();
        let program = match raw.program.as_deref() {
            None => {
                cx.problem(
                    &format!("{prefix}.program"),
                    "missing; set the path of the program to run",
                );
                None
            }
            Some("") => {
                cx.problem(&format!("{prefix}.program"), "is empty");
                None
            }
            Some(program) => {
                let path = cx.path(program);
                match check_executable(&path) {
                    Ok(()) => Some(path),
                    Err(message) => {
                        cx.problem(&format!("{prefix}.program"), message);
                        None
                    }
                }
            }
        };

        let mut arg_fields: Vec<&str> = PERSON_FIELDS.to_vec();
        arg_fields.push("account");
        let mut args = Vec::new();
        for (i, source) in raw.args.unwrap_or_default().iter().enumerate() {
            match Template::parse(source, &arg_fields) {
                Ok(template) => args.push(template),
                Err(message) => cx.problem(&format!("{prefix}.args[{i}]"), message),
            }
        }

        let timeout = cx.call_timeout(
            prefix,
            raw.timeout.as_deref(),
            DEFAULT_EXEC_TIMEOUT,
            workers,
        );

        let exit_already_absent = exit_codes(
            cx,
            &format!("{prefix}.exit_already_absent"),
            raw.exit_already_absent,
            DEFAULT_EXIT_ALREADY_ABSENT,
        );
        let exit_permanent = exit_codes(
            cx,
            &format!("{prefix}.exit_permanent"),
            raw.exit_permanent,
            DEFAULT_EXIT_PERMANENT,
        );
        for code in &exit_permanent {
            if exit_already_absent.contains(code) {
                cx.problem(
                    &format!("{prefix}.exit_permanent"),
                    format!("exit code {code} is also in exit_already_absent; a code can mean only one outcome"),
                );
            }
        }

        if cx.problem_count() > before {
            return None;
        }
        Some(ExecConfig {
            program: program?,
            args,
            timeout,
            exit_already_absent,
            exit_permanent,
        })
    }

    fn build(
        &self,
        _connector: &ConnectorConfig,
        limiter: Arc<Limiter>,
        _clock: &Clock,
    ) -> anyhow::Result<Arc<dyn Connector>> {
        Ok(Arc::new(ExecConnector::new(self.clone(), limiter)))
    }
}

fn exit_codes(
    cx: &mut Validator<'_>,
    key: &str,
    raw: Option<Vec<i64>>,
    default: &[i32],
) -> Vec<i32> {
    let Some(raw) = raw else {
        return default.to_vec();
    };
    let mut codes = Vec::new();
    for code in raw {
        match code {
            0 => cx.problem(key, "0 means success and cannot be listed"),
            1..=255 => {
                let code = i32::try_from(code).unwrap_or_default();
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
            _ => cx.problem(
                key,
                format!("exit code {code} is out of range: must be 1 to 255"),
            ),
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{parse, parse_with, problem_for, problems, write_file};
    use crate::connectors::ConnectorKind;

    #[test]
    fn exec_args_may_use_account_but_the_account_template_may_not() {
        let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\nargs = [\"--user\", \"{account}\", \"{employee_id}\"]\n";
        let config = parse(text).unwrap();
        let ConnectorKind::Exec(exec) = &config.connectors[0].kind else {
            panic!("expected an exec connector");
        };
        assert_eq!(exec.args[1].source(), "{account}");
        let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\naccount = \"{account}\"\nargs = [\"{nope}\"]\n";
        let p = problems(text);
        problem_for(&p, "connector.ldap.account");
        problem_for(&p, "connector.ldap.args[0]");
    }

    #[test]
    fn exec_program_must_exist_and_be_executable() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("not-exec"), "#!/bin/sh\n", 0o644);
        let text = "[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"missing.sh\"\n[[connector]]\nname = \"b\"\nkind = \"exec\"\nprogram = \"not-exec\"\n";
        let err = parse_with(text, dir.path(), &[]).unwrap_err();
        let missing = problem_for(&err.problems, "connector.a.program");
        assert!(
            missing
                .message
                .contains("missing.sh: No such file or directory"),
            "{missing:?}"
        );
        let not_exec = problem_for(&err.problems, "connector.b.program");
        assert!(
            not_exec.message.contains("is not executable"),
            "{not_exec:?}"
        );
    }

    #[test]
    fn exit_code_lists_refuse_zero_and_overlap() {
        let text = "[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\nexit_already_absent = [0, 3]\nexit_permanent = [3, 300]\n";
        let p = problems(text);
        assert!(
            p.iter().any(|p| p.key == "connector.a.exit_already_absent"
                && p.message.contains("0 means success"))
        );
        assert!(
            p.iter().any(
                |p| p.key == "connector.a.exit_permanent" && p.message.contains("out of range")
            )
        );
        assert!(
            p.iter().any(|p| p.key == "connector.a.exit_permanent"
                && p.message.contains("exit code 3 is also"))
        );
    }

    #[test]
    fn exec_timeout_not_shorter_than_the_lease_is_a_warning() {
        let text = "[workers]\nlease = \"1m\"\n[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ntimeout = \"2m\"\n";
        let config = parse(text).unwrap();
        let warned = config
            .warnings
            .iter()
            .any(|w| w.contains("connector.a.timeout (2m)") && w.contains("workers.lease (1m)"));
        assert!(warned, "{:?}", config.warnings);
    }
}
