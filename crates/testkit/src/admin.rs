//! The admin pages as a browser without JavaScript uses them, through curl: a cookie jar,
//! the login form with its token, and each page's form token for the next POST. For the
//! end-to-end tests that check what a page says or does without driving Chromium.

use std::path::PathBuf;
use std::process::Command;

use crate::Netns;

/// A curl session with the admin pages at `base` (`http://127.0.0.1:PORT`), from this
/// machine or from inside a namespace.
#[derive(Debug)]
pub struct AdminPages<'a> {
    base: String,
    jar: PathBuf,
    ns: Option<&'a Netns>,
}

/// The form token (`csrf`) a page carries, if it has a form.
pub fn form_token(page: &str) -> Option<String> {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
}

impl<'a> AdminPages<'a> {
    /// A session whose cookies are kept in `jar` (a file in the test's directory).
    pub fn new(base: &str, jar: PathBuf, ns: Option<&'a Netns>) -> AdminPages<'a> {
        AdminPages {
            base: base.trim_end_matches('/').to_string(),
            jar,
            ns,
        }
    }

    /// curl with the cookie jar and `args`: the whole answer, status line and headers
    /// first (empty if curl could not run).
    pub fn curl(&self, args: &[&str]) -> String {
        let mut cmd = match self.ns {
            Some(ns) => ns.command("curl"),
            None => Command::new("curl"),
        };
        cmd.args(["-s", "-i", "--max-time", "20", "--noproxy", "*", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(args);
        cmd.output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> String {
        self.curl(&[&format!("{}{path}", self.base)])
    }

    /// POST `form` (url-encoded, without the token) to `path`, with the token of the page
    /// `token_from` carries.
    pub fn post(&self, token_from: &str, path: &str, form: &str) -> String {
        let token = form_token(token_from).unwrap_or_default();
        let body = if form.is_empty() {
            format!("csrf={token}")
        } else {
            format!("csrf={token}&{form}")
        };
        self.curl(&["-d", &body, &format!("{}{path}", self.base)])
    }

    /// Logs in as `user`: the login page's answer (a 303 when it worked).
    pub fn log_in(&self, user: &str, password: &str) -> String {
        let login = self.get("/login");
        self.post(
            &login,
            "/login",
            &format!("user={user}&password={password}"),
        )
    }
}
