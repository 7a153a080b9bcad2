//! `cairn completions SHELL` and `cairn man DIR`: shell completions and man pages, made from
//! the same definitions as the arguments themselves, so they never fall behind.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::context::GlobalArgs;

/// Print a shell completion script.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. Install, e.g.:
    /// `cairn completions bash > /etc/bash_completion.d/cairn`,
    /// `cairn completions zsh > "${fpath[1]}/_cairn"`,
    /// `cairn completions fish > ~/.config/fish/completions/cairn.fish`.
    shell: clap_complete::Shell,
}

/// Write man pages.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// The directory to write cairn.1 and a cairn-COMMAND.1 per command into (created if
    /// missing), e.g. /usr/local/share/man/man1.
    dir: std::path::PathBuf,
}

pub fn completions(_global: &GlobalArgs, args: CompletionsArgs) -> Result<u8> {
    let mut cmd = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cairn", &mut script);
    // Written here, so a closed pipe is an error `main` takes for "stop quietly", not a panic.
    std::io::Write::write_all(&mut std::io::stdout(), &script).context("writing the completion script")?;
    Ok(0)
}

pub fn man(global: &GlobalArgs, args: ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let cmd = crate::Cli::command();
    let mut written = 0;
    let mut write = |name: &str, page: clap::Command| -> Result<()> {
        let path = args.dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.to_uppercase())
            .render(&mut out)
            .with_context(|| format!("rendering {name}"))?;
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
        Ok(())
    };
    write("cairn", cmd.clone())?;
    for sub in cmd.get_subcommands() {
        // A subcommand's page is named as man(1) finds it: `man cairn-backup`.
        write(&format!("cairn-{}", sub.get_name()), sub.clone())?;
    }
    if !global.quiet {
        println!("wrote {written} man pages into {}", args.dir.display());
    }
    Ok(0)
}
