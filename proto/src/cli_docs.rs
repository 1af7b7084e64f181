//! Man pages (section 8, one per subcommand as `NAME-SUB.8`) and bash/zsh/fish completions
//! generated from a binary's clap definition, for the Debian package. fnatd and fnatctl
//! each call [`write`] from a hidden subcommand, so the pages always match the parser.

use std::path::Path;

use clap::Command;
use clap_complete::Shell;

/// Writes `DIR/man/*.8` and `DIR/completions/{NAME.bash,_NAME,NAME.fish}` for `cmd`.
pub fn write(cmd: Command, dir: &Path) -> std::io::Result<()> {
    let mut cmd = cmd;
    cmd.build();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    page(&cmd, cmd.get_name(), &man)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    let name = cmd.get_name().to_string();
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut out = std::fs::File::create(completions.join(file))?;
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut out);
    }
    Ok(())
}

/// One page for `cmd` (titled `title`), then one per visible subcommand.
fn page(cmd: &Command, title: &str, dir: &Path) -> std::io::Result<()> {
    let named = cmd.clone().display_name(title.to_string());
    let mut out = std::fs::File::create(dir.join(format!("{title}.8")))?;
    clap_mangen::Man::new(named)
        .title(title.to_string())
        .section("8")
        .render(&mut out)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        page(sub, &format!("{title}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
