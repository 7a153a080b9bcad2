//! The operator's interface (issue 17, item 3): shell completions, man pages, and help that
//! keeps the global options apart and names every repository URL scheme.

use cairn_tests::{TestRepo, args};

fn cairn() -> TestRepo {
    TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    let repo = cairn();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef cairn"), ("fish", "complete -c cairn")] {
        let script = repo.run(args!["completions", shell]).success().stdout_text();
        assert!(script.contains(marker), "{shell}: {script:.200}");
        for command in ["backup", "restore", "forget", "policy"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    repo.run(args!["completions", "tcsh"]).code(cairn_tests::exit::USAGE);
}

#[test]
fn man_writes_a_page_per_command_that_man_can_render() {
    let repo = cairn();
    let dir = repo.scratch().join("man1");
    repo.run(args!["man", &dir]).success();
    for page in ["cairn.1", "cairn-backup.1", "cairn-restore.1", "cairn-policy.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page} is not a man page");
    }
    let backup = std::fs::read_to_string(dir.join("cairn-backup.1")).unwrap();
    assert!(backup.contains("exclude"), "the backup page documents its options");
}

#[test]
fn help_sets_global_options_apart_and_names_every_url_scheme() {
    let help = cairn().run(args!["backup", "--help"]).success().stdout_text();
    let (own, global) = help.split_once("Global options:").expect("a heading for the global options");
    assert!(own.contains("--exclude") && !own.contains("--repo"), "{help}");
    assert!(global.contains("--repo") && global.contains("--password-file"), "{help}");
    for scheme in ["file://", "s3://", "gs://", "az://", "http(s)://", "memory://"] {
        assert!(global.contains(scheme), "-r does not mention {scheme}:\n{global}");
    }
}
