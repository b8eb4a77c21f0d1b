//! The list pages: Users (add, edit, delete; password, extension, voicemail PIN; their
//! external mailboxes with the last fetch result) and Message Aliases. Each change is an
//! edit of the config text, validated as a whole before it is saved, like every page.

use officebox_config::edit::{self, NewUser};
use officebox_config::{AliasMember, Config, Diagnostic};

use crate::html::{self, escape};

/// What a list form asked for.
#[derive(Debug)]
pub enum Change {
    AddUser {
        login: String,
        name: String,
        extension: String,
        password: String,
        admin: bool,
    },
    EditUser {
        login: String,
        name: String,
        extension: String,
        admin: bool,
        password: String,
        pin: String,
    },
    DeleteUser(String),
    SetAlias {
        name: String,
        members: Vec<String>,
    },
}

/// The config text after `change` (blocking: hashing takes a moment). `Err` is a message
/// for the page.
pub fn apply(text: &str, change: &Change) -> Result<String, String> {
    let e = |e: edit::EditError| e.to_string();
    match change {
        Change::AddUser {
            login,
            name,
            extension,
            password,
            admin,
        } => {
            officebox_config::parse_login(login)
                .map_err(|m| format!("{m}: use lowercase letters, digits, '.', '-' or '_'"))?;
            if password.chars().count() < 8 {
                return Err("A password has at least 8 characters.".into());
            }
            let hash = officebox_secrets::hash(password).map_err(|e| e.to_string())?;
            let text = edit::add_user(
                text,
                &NewUser {
                    login,
                    name: if name.trim().is_empty() {
                        login
                    } else {
                        name.trim()
                    },
                    password_hash: &hash,
                    extension: Some(extension.trim()).filter(|x| !x.is_empty()),
                    admin: *admin,
                },
            )
            .map_err(e)?;
            officebox_secrets::with_sip_secret(&text, login, password).map_err(|e| e.to_string())
        }
        Change::EditUser {
            login,
            name,
            extension,
            admin,
            password,
            pin,
        } => {
            let mut text = edit::set_user_setting(text, login, "name", Some(name)).map_err(e)?;
            text = edit::set_user_setting(&text, login, "extension", Some(extension)).map_err(e)?;
            text = edit::set_user_setting(
                &text,
                login,
                "admin",
                Some(if *admin { "true" } else { "false" }),
            )
            .map_err(e)?;
            if !password.is_empty() {
                if password.chars().count() < 8 {
                    return Err("A password has at least 8 characters.".into());
                }
                text = officebox_secrets::set_password(&text, login, password)
                    .map_err(|e| e.to_string())?;
            }
            if !pin.is_empty() {
                if !(4..=10).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("A voicemail PIN is 4 to 10 digits.".into());
                }
                let hash = officebox_secrets::hash(pin).map_err(|e| e.to_string())?;
                text = edit::set_pin(&text, login, &hash).map_err(e)?;
            }
            Ok(text)
        }
        Change::DeleteUser(login) => edit::remove_user(text, login).map_err(e),
        Change::SetAlias { name, members } => {
            officebox_config::parse_login(name)
                .map_err(|m| format!("{m}: an alias name is like a login"))?;
            edit::set_alias(text, name, members).map_err(e)
        }
    }
}

fn hidden_csrf(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

fn input(name: &str, label: &str, value: &str, kind: &str, help: &str) -> String {
    let id = name.replace('.', "-");
    format!(
        "<div class=\"field\"><label for=\"{id}\">{}</label>\
         <input type=\"{kind}\" id=\"{id}\" name=\"{name}\" value=\"{}\" aria-describedby=\"{id}-help\">\
         <p class=\"help\" id=\"{id}-help\">{}</p></div>",
        escape(label),
        escape(value),
        escape(help)
    )
}

fn problems(diags: &[Diagnostic], error: Option<&str>) -> String {
    let mut out = String::new();
    if error.is_none() && diags.is_empty() {
        return out;
    }
    out.push_str("<div class=\"error\" role=\"alert\" id=\"form-error\">");
    if let Some(e) = error {
        out.push_str(&format!("<p>{}</p>", escape(e)));
    }
    if !diags.is_empty() {
        out.push_str(&format!("<ul>{}</ul>", html::problem_items(diags)));
    }
    out.push_str("</div>");
    out
}

/// The Users page. `fetch`: per account key, (last error, messages fetched).
pub fn users_page(
    config: &Config,
    me: (&str, &str),
    fetch: &[(String, Option<String>, i64)],
    diags: &[Diagnostic],
    error: Option<&str>,
    flash: Option<(&str, bool)>,
) -> String {
    let csrf = hidden_csrf(me.1);
    let mut body = String::from(
        "<p>Everyone who has mail, a phone, or logs in here. Passwords and PINs are stored only as hashes.</p>",
    );
    body.push_str(&problems(diags, error));
    body.push_str("<table><tr><th>Login</th><th>Name</th><th>Extension</th><th>Admin</th><th>External mailboxes</th></tr>");
    for u in &config.users {
        let mut accounts = String::new();
        for a in &u.pop3 {
            let key = format!("{}:{}@{}:{}", u.login, a.login, a.server, a.port);
            let status = fetch.iter().find(|(k, _, _)| *k == key).map_or(
                "not polled yet".to_string(),
                |(_, err, n)| match err {
                    Some(e) => format!("last error: {e}"),
                    None => format!("ok, {n} fetched"),
                },
            );
            accounts.push_str(&format!(
                "{}@{} ({})<br>",
                escape(&a.login),
                escape(&a.server),
                escape(&status)
            ));
        }
        body.push_str(&format!(
            "<tr><td><a href=\"/users/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
            escape(&u.login),
            escape(&u.name),
            escape(u.extension.as_deref().unwrap_or("")),
            if u.admin { "yes" } else { "" },
            if accounts.is_empty() { "-".into() } else { accounts }
        ));
    }
    body.push_str(
        "</table><h2>Add a user</h2><form method=\"post\" action=\"/users\" id=\"add-user\">",
    );
    body.push_str(&csrf);
    body.push_str(&input(
        "login",
        "Login",
        "",
        "text",
        "Lowercase letters, digits, '.', '-' or '_'; also the mailbox name.",
    ));
    body.push_str(&input(
        "name",
        "Name",
        "",
        "text",
        "As people see it in mail and on phones.",
    ));
    body.push_str(&input(
        "extension",
        "Extension",
        "",
        "text",
        "2 to 6 digits, e.g. 103; empty for no phone.",
    ));
    body.push_str(&input(
        "password",
        "Password",
        "",
        "password",
        "At least 8 characters; for mail, phones and (admins) these pages.",
    ));
    body.push_str(
        "<div class=\"field\"><input type=\"checkbox\" id=\"admin\" name=\"admin\" value=\"true\">\
         <label for=\"admin\" style=\"display:inline\">May log in to these pages</label></div>\
         <button type=\"submit\">Add user</button></form>",
    );
    html::page("Users", "/users", Some(me), flash, &body)
}

/// One user's page: edit or delete.
pub fn user_page(
    config: &Config,
    me: (&str, &str),
    login: &str,
    flash: Option<(&str, bool)>,
    extra: &str,
) -> Option<String> {
    let u = config.users.iter().find(|u| u.login == login)?;
    let csrf = hidden_csrf(me.1);
    let mut body = String::new();
    body.push_str(&format!(
        "<form method=\"post\" action=\"/users/{0}\" id=\"edit-user\">{csrf}",
        escape(login)
    ));
    body.push_str(&input("name", "Name", &u.name, "text", ""));
    body.push_str(&input(
        "extension",
        "Extension",
        u.extension.as_deref().unwrap_or(""),
        "text",
        "Empty: no phone.",
    ));
    body.push_str(&input(
        "password",
        "New password",
        "",
        "password",
        "Leave empty to keep the password.",
    ));
    body.push_str(&input(
        "pin",
        "New voicemail PIN",
        "",
        "password",
        "4 to 10 digits; leave empty to keep it.",
    ));
    body.push_str(&format!(
        "<div class=\"field\"><input type=\"checkbox\" id=\"admin\" name=\"admin\" value=\"true\"{}>\
         <label for=\"admin\" style=\"display:inline\">May log in to these pages</label></div>\
         <button type=\"submit\">Save</button></form>{extra}\
         <h2>Delete</h2><form method=\"post\" action=\"/users/{}/delete\" id=\"delete-user\">{csrf}\
         <button type=\"submit\">Delete this user</button></form>",
        if u.admin { " checked" } else { "" },
        escape(login)
    ));
    Some(html::page(
        &format!("User {login}"),
        "/users",
        Some(me),
        flash,
        &body,
    ))
}

/// The Message Aliases page.
pub fn aliases_page(
    config: &Config,
    me: (&str, &str),
    diags: &[Diagnostic],
    error: Option<&str>,
    flash: Option<(&str, bool)>,
) -> String {
    let csrf = hidden_csrf(me.1);
    let mut body = String::from(
        "<p>An alias is a name that delivers to users and/or addresses elsewhere. \
         To keep a copy here and forward one, name the user itself: <code>bob</code> \
         with members <code>bob, bob@home.example</code>.</p>",
    );
    body.push_str(&problems(diags, error));
    body.push_str("<table><tr><th>Alias</th><th>Members</th></tr>");
    for a in &config.mail.aliases {
        let members: Vec<String> = a
            .members
            .iter()
            .map(|m| match m {
                AliasMember::Local(l) | AliasMember::External(l) => l.clone(),
            })
            .collect();
        body.push_str(&format!(
            "<tr><td>{}@{}</td><td>{}</td></tr>",
            escape(&a.name),
            escape(&config.network.domain),
            escape(&members.join(", "))
        ));
    }
    body.push_str("</table><h2>Add or change an alias</h2><form method=\"post\" action=\"/aliases\" id=\"alias\">");
    body.push_str(&csrf);
    body.push_str(&input(
        "alias",
        "Alias",
        "",
        "text",
        "The name before the @, e.g. sales.",
    ));
    body.push_str(&input(
        "members",
        "Members",
        "",
        "text",
        "Users and addresses, comma-separated; empty removes the alias.",
    ));
    body.push_str("<button type=\"submit\">Save alias</button></form>");
    html::page("Message Aliases", "/aliases", Some(me), flash, &body)
}
