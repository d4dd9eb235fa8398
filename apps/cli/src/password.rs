//! Where the master password comes from: `WAIAAS_MASTER_PASSWORD` > `WAIAAS_MASTER_PASSWORD_FILE` (the file's
//! contents, one trailing newline removed) > an interactive prompt (only when stdin is a terminal).
//!
//! The password is held in a [`Zeroizing`] string and never logged or echoed. Error messages name the source
//! (variable or file path), never the value.

use std::path::Path;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

pub const PASSWORD_ENV: &str = "WAIAAS_MASTER_PASSWORD";
pub const PASSWORD_FILE_ENV: &str = "WAIAAS_MASTER_PASSWORD_FILE";

/// Which source supplied the password (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Env,
    File,
    Prompt,
}

/// What the resolver may use besides the environment. Implemented by [`Terminal`] in production and by fakes
/// in tests.
pub trait Interaction {
    /// Whether a person can be asked (stdin is a terminal).
    fn is_interactive(&self) -> bool;
    /// Asks for a secret without echoing it.
    fn prompt(&self, label: &str) -> anyhow::Result<Zeroizing<String>>;
    /// Reads a password file.
    fn read_file(&self, path: &Path) -> std::io::Result<Zeroizing<String>>;
}

/// The real terminal and filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct Terminal;

impl Interaction for Terminal {
    fn is_interactive(&self) -> bool {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal()
    }

    fn prompt(&self, label: &str) -> anyhow::Result<Zeroizing<String>> {
        Ok(Zeroizing::new(rpassword::prompt_password(label).context("cannot read the password from the terminal")?))
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Zeroizing<String>> {
        std::fs::read_to_string(path).map(Zeroizing::new)
    }
}

/// Resolves the master password. `env` looks up a variable; `first_run` asks twice on the prompt (a typo in a
/// brand-new password would lock the operator out).
pub fn master_password(
    env: impl Fn(&str) -> Option<String>,
    io: &dyn Interaction,
    first_run: bool,
) -> anyhow::Result<(Zeroizing<String>, Source)> {
    if let Some(value) = env(PASSWORD_ENV) {
        let value = Zeroizing::new(value);
        if value.is_empty() {
            bail!("{PASSWORD_ENV} is set but empty");
        }
        return Ok((value, Source::Env));
    }
    if let Some(path) = env(PASSWORD_FILE_ENV) {
        let path = Path::new(&path);
        let contents = io.read_file(path).with_context(|| {
            format!("cannot read the master password file {} ({PASSWORD_FILE_ENV})", path.display())
        })?;
        let password = Zeroizing::new(strip_one_newline(&contents).to_owned());
        if password.is_empty() {
            bail!("the master password file {} ({PASSWORD_FILE_ENV}) is empty", path.display());
        }
        return Ok((password, Source::File));
    }
    if !io.is_interactive() {
        bail!(
            "no master password: set {PASSWORD_ENV} or {PASSWORD_FILE_ENV}, or run `waiaas start` in a terminal to be \
             prompted"
        );
    }
    let label = if first_run { "Choose a master password: " } else { "Master password: " };
    let password = io.prompt(label)?;
    if password.is_empty() {
        bail!("the master password must not be empty");
    }
    if first_run {
        let again = io.prompt("Repeat the master password: ")?;
        if *again != *password {
            bail!("the two passwords differ; nothing was changed");
        }
    }
    Ok((password, Source::Prompt))
}

/// Removes one trailing `\n` or `\r\n` (what `echo` or an editor leaves), keeping any other whitespace: it may
/// be part of the password.
fn strip_one_newline(text: &str) -> &str {
    text.strip_suffix("\r\n").or_else(|| text.strip_suffix('\n')).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    /// A scripted terminal and filesystem.
    #[derive(Default)]
    struct Fake {
        interactive: bool,
        answers: RefCell<Vec<&'static str>>,
        prompts: RefCell<Vec<String>>,
        files: HashMap<&'static str, &'static str>,
    }

    impl Interaction for Fake {
        fn is_interactive(&self) -> bool {
            self.interactive
        }
        fn prompt(&self, label: &str) -> anyhow::Result<Zeroizing<String>> {
            self.prompts.borrow_mut().push(label.to_owned());
            let mut answers = self.answers.borrow_mut();
            assert!(!answers.is_empty(), "unexpected prompt {label:?}");
            Ok(Zeroizing::new(answers.remove(0).to_owned()))
        }
        fn read_file(&self, path: &Path) -> std::io::Result<Zeroizing<String>> {
            self.files
                .get(path.to_str().unwrap())
                .map(|s| Zeroizing::new((*s).to_owned()))
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    /// Resolves with `vars` as the environment; `Ok((password, source))` or `Err(text)` in the message.
    #[track_caller]
    fn check(vars: &[(&str, &str)], fake: &Fake, first_run: bool, expected: Result<(&str, Source), &str>) {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let result = master_password(|name| env.get(name).cloned(), fake, first_run);
        match (result, expected) {
            (Ok((pw, source)), Ok((want_pw, want_source))) => {
                assert_eq!((pw.as_str(), source), (want_pw, want_source));
            }
            (Err(err), Err(text)) => {
                let shown = format!("{err:#}");
                assert!(shown.contains(text), "{shown:?} does not contain {text:?}");
            }
            (Ok((_, source)), Err(text)) => {
                panic!("expected error {text:?}, got a password from {source:?}")
            }
            (Err(err), Ok(_)) => panic!("expected a password, got {err:#}"),
        }
    }

    fn with_file(name: &'static str, contents: &'static str) -> Fake {
        Fake { files: HashMap::from([(name, contents)]), ..Fake::default() }
    }

    #[test]
    fn env_beats_file_beats_prompt() {
        let fake = Fake { interactive: true, answers: RefCell::new(vec!["typed"]), ..with_file("/pw", "from-file\n") };
        check(&[(PASSWORD_ENV, "from-env"), (PASSWORD_FILE_ENV, "/pw")], &fake, false, Ok(("from-env", Source::Env)));
        check(&[(PASSWORD_FILE_ENV, "/pw")], &fake, false, Ok(("from-file", Source::File)));
        assert!(fake.prompts.borrow().is_empty(), "no prompt while a variable supplies the password");
        check(&[], &fake, false, Ok(("typed", Source::Prompt)));
        assert_eq!(*fake.prompts.borrow(), ["Master password: "]);
    }

    #[test]
    fn file_contents_lose_exactly_one_trailing_newline() {
        check(&[(PASSWORD_FILE_ENV, "/a")], &with_file("/a", "pw\r\n"), false, Ok(("pw", Source::File)));
        check(&[(PASSWORD_FILE_ENV, "/a")], &with_file("/a", "pw\n\n"), false, Ok(("pw\n", Source::File)));
        check(&[(PASSWORD_FILE_ENV, "/a")], &with_file("/a", " pw "), false, Ok((" pw ", Source::File)));
        check(&[(PASSWORD_FILE_ENV, "/a")], &with_file("/a", "\n"), false, Err("is empty"));
        check(
            &[(PASSWORD_FILE_ENV, "/missing")],
            &Fake::default(),
            false,
            Err("cannot read the master password file /missing"),
        );
    }

    #[test]
    fn empty_env_and_no_terminal_are_errors() {
        check(&[(PASSWORD_ENV, "")], &Fake::default(), false, Err("WAIAAS_MASTER_PASSWORD is set but empty"));
        check(&[], &Fake::default(), false, Err("no master password: set WAIAAS_MASTER_PASSWORD"));
    }

    #[test]
    fn first_run_prompt_asks_twice() {
        let same = Fake { interactive: true, answers: RefCell::new(vec!["new-pw", "new-pw"]), ..Fake::default() };
        check(&[], &same, true, Ok(("new-pw", Source::Prompt)));
        assert_eq!(same.prompts.borrow().len(), 2);
        let differ = Fake { interactive: true, answers: RefCell::new(vec!["new-pw", "new-pq"]), ..Fake::default() };
        check(&[], &differ, true, Err("the two passwords differ"));
        let empty = Fake { interactive: true, answers: RefCell::new(vec![""]), ..Fake::default() };
        check(&[], &empty, false, Err("must not be empty"));
    }
}
