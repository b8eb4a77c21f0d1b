//! The list pages: Users (add, edit, delete; password, extension, voicemail PIN; their
//! external mailboxes with the last fetch result) and Message Aliases. Each change is an
//! edit of the config text, validated as a whole before it is saved, like every page.

use officebox_config::edit::{self, NewUser};
use officebox_config::{AliasMember, Config, Diagnostic};

use maud::{Markup, html};

use crate::html;

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
        /// Outside calls: the number shown, at once, a day, from phones away.
        caller_id: String,
        at_once: String,
        per_day: String,
        from_remote: bool,
        /// A fax machine of their own.
        fax: bool,
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
            caller_id,
            at_once,
            per_day,
            from_remote,
            fax,
        } => {
            let mut text = edit::set_user_setting(text, login, "name", Some(name)).map_err(e)?;
            text = edit::set_user_setting(&text, login, "extension", Some(extension)).map_err(e)?;
            for (key, v) in [
                ("caller_id", caller_id.as_str()),
                ("outside_calls_at_once", at_once.as_str()),
                ("outside_calls_per_day", per_day.as_str()),
                // Off is the default: unchecked leaves the file without it.
                (
                    "outside_calls_from_remote_phones",
                    if *from_remote { "true" } else { "" },
                ),
                ("fax", if *fax { "true" } else { "" }),
            ] {
                text = edit::set_user_setting(&text, login, key, Some(v)).map_err(e)?;
            }
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

/// A labelled input with its help below.
fn input(name: &str, label: &str, value: &str, kind: &str, help: &str) -> Markup {
    let id = name.replace('.', "-");
    html! {
        div.field {
            label for=(id) { (label) }
            input type=(kind) id=(id) name=(name) value=(value) aria-describedby={ (id) "-help" };
            p.help id={ (id) "-help" } { (help) }
        }
    }
}

/// Why a change was refused, above the form.
fn problems(diags: &[Diagnostic], error: Option<&str>) -> Markup {
    html! {
        @if error.is_some() || !diags.is_empty() {
            div.error role="alert" id="form-error" {
                @if let Some(e) = error { p { (e) } }
                @if !diags.is_empty() { ul { (html::problem_items(diags)) } }
            }
        }
    }
}

/// The admin checkbox of the user forms.
fn admin_box(checked: bool) -> Markup {
    html! {
        div.field {
            input type="checkbox" id="admin" name="admin" value="true" checked[checked];
            label for="admin" style="display:inline" { "May log in to these pages" }
        }
    }
}

/// The Users page. `fetch`: per account key, (last error, messages fetched).
pub fn users_page(
    config: &Config,
    me: (&str, &str),
    fetch: &[(String, Option<String>, i64)],
    diags: &[Diagnostic],
    error: Option<&str>,
    flash: Option<(&str, bool)>,
) -> Markup {
    let status = |key: &str| {
        fetch.iter().find(|(k, _, _)| k == key).map_or(
            "not polled yet".to_string(),
            |(_, err, n)| match err {
                Some(e) => format!("last error: {e}"),
                None => format!("ok, {n} fetched"),
            },
        )
    };
    let body = html! {
        p { "Everyone who has mail, a phone, or logs in here. Passwords and PINs are stored only as hashes." }
        (problems(diags, error))
        table {
            tr { th { "Login" } th { "Name" } th { "Extension" } th { "Admin" } th { "External mailboxes" } }
            @for u in &config.users {
                tr {
                    td { a href={ "/users/" (u.login) } { (u.login) } }
                    td { (u.name) }
                    td { (u.extension.as_deref().unwrap_or("")) }
                    td { (if u.admin { "yes" } else { "" }) }
                    td {
                        @if u.pop3.is_empty() { "-" }
                        @for a in &u.pop3 {
                            (a.login) "@" (a.server) " ("
                            (status(&format!("{}:{}@{}:{}", u.login, a.login, a.server, a.port)))
                            ")" br;
                        }
                    }
                }
            }
        }
        h2 { "Add a user" }
        form method="post" action="/users" id="add-user" {
            (html::csrf_field(me.1))
            (input("login", "Login", "", "text", "Lowercase letters, digits, '.', '-' or '_'; also the mailbox name."))
            (input("name", "Name", "", "text", "As people see it in mail and on phones."))
            (input("extension", "Extension", "", "text", "2 to 6 digits, e.g. 103; empty for no phone."))
            (input("password", "Password", "", "password", "At least 8 characters; for mail, phones and (admins) these pages."))
            (admin_box(false))
            button type="submit" { "Add user" }
        }
    };
    html::page("Users", "/users", Some(me), flash, body)
}

/// One user's page: edit or delete. `extra`: their own lists.
pub fn user_page(
    config: &Config,
    me: (&str, &str),
    login: &str,
    flash: Option<(&str, bool)>,
    extra: Markup,
) -> Option<Markup> {
    let u = config.users.iter().find(|u| u.login == login)?;
    let body = html! {
        form method="post" action={ "/users/" (login) } id="edit-user" {
            (html::csrf_field(me.1))
            (input("name", "Name", &u.name, "text", ""))
            (input("extension", "Extension", u.extension.as_deref().unwrap_or(""), "text", "Empty: no phone."))
            (input("password", "New password", "", "password", "Leave empty to keep the password."))
            (input("pin", "New voicemail PIN", "", "password", "4 to 10 digits; leave empty to keep it."))
            (admin_box(u.admin))
            h2 { "Outside calls" }
            (input("caller_id", "Caller ID", u.caller_id.as_deref().unwrap_or(""), "text",
                "The number called parties see (a direct line). Empty: the route's, else the company's main number."))
            (input("outside_calls_at_once", "Outside calls at once", &u.outside.at_once.to_string(), "number",
                "0: no outside calls at all (emergency numbers always go out)."))
            (input("outside_calls_per_day", "Outside calls a day", &u.outside.per_day.to_string(), "number",
                "More are refused until midnight, and the administrators are mailed."))
            div.field {
                input type="checkbox" id="outside_calls_from_remote_phones" name="outside_calls_from_remote_phones"
                    value="true" checked[u.outside.from_remote_phones];
                label for="outside_calls_from_remote_phones" style="display:inline" {
                    "Outside calls from this user's phones away from the office"
                }
            }
            h2 { "Fax" }
            div.field {
                input type="checkbox" id="fax" name="fax" value="true" checked[u.fax]
                    aria-describedby="fax-help";
                label for="fax" style="display:inline" { "A fax machine of their own" }
                p.help id="fax-help" {
                    "Faxes to fax:" (login) " (a number from outside, an attendant key on the Phone Routing page) \
                     come to this user's mailbox as a PDF. Faxes to send: mail them to number@fax."
                    (config.network.domain)
                }
            }
            button type="submit" { "Save" }
        }
        (extra)
        h2 { "Delete" }
        form method="post" action={ "/users/" (login) "/delete" } id="delete-user" {
            (html::csrf_field(me.1))
            button type="submit" { "Delete this user" }
        }
    };
    Some(html::page(
        &format!("User {login}"),
        "/users",
        Some(me),
        flash,
        body,
    ))
}

/// The Message Aliases page.
pub fn aliases_page(
    config: &Config,
    me: (&str, &str),
    diags: &[Diagnostic],
    error: Option<&str>,
    flash: Option<(&str, bool)>,
) -> Markup {
    let body = html! {
        p {
            "An alias is a name that delivers to users and/or addresses elsewhere. \
             To keep a copy here and forward one, name the user itself: " code { "bob" }
            " with members " code { "bob, bob@home.example" } "."
        }
        (problems(diags, error))
        table {
            tr { th { "Alias" } th { "Members" } }
            @for a in &config.mail.aliases {
                @let members: Vec<&str> = a.members.iter().map(|m| match m {
                    AliasMember::Local(l) | AliasMember::External(l) => l.as_str(),
                }).collect();
                tr {
                    td { (a.name) "@" (config.network.domain) }
                    td { (members.join(", ")) }
                }
            }
        }
        h2 { "Add or change an alias" }
        form method="post" action="/aliases" id="alias" {
            (html::csrf_field(me.1))
            (input("alias", "Alias", "", "text", "The name before the @, e.g. sales."))
            (input("members", "Members", "", "text", "Users and addresses, comma-separated; empty removes the alias."))
            button type="submit" { "Save alias" }
        }
    };
    html::page("Message Aliases", "/aliases", Some(me), flash, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_users_name_and_mailbox_are_shown_as_text() {
        let text = include_str!("../../../examples/demo.toml");
        let mut c = officebox_config::parse("demo.toml", text).unwrap();
        c.users[0].name = "<b>Evil</b> & co".into();
        let page =
            users_page(&c, ("admin", "t\"k"), &[], &[], Some("<i>no</i>"), None).into_string();
        assert!(page.contains("&lt;b&gt;Evil&lt;/b&gt; &amp; co"), "{page}");
        assert!(page.contains("<p>&lt;i&gt;no&lt;/i&gt;</p>"), "{page}");
        assert!(!page.contains("<b>Evil"), "{page}");
        assert!(page.contains("name=\"csrf\" value=\"t&quot;k\""), "{page}");
    }
}
