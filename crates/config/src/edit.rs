//! Changes to users in a config file that keep its comments and layout.
//!
//! Each function takes the file's text and returns the new text; the caller validates the
//! result with [`crate::parse`] and writes it atomically. Nothing here touches the disk.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

/// Why an edit could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("the config file is not valid TOML: {0}")]
    Syntax(String),
    #[error("there is no user `{0}`")]
    NoSuchUser(String),
    #[error("there is already a user `{0}`")]
    UserExists(String),
    #[error("`users` in the config file is not a list of [[users]] entries")]
    NotAList,
}

/// A new user's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser<'a> {
    pub login: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub extension: Option<&'a str>,
    pub admin: bool,
}

fn document(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Syntax(e.message().trim().to_string()))
}

fn users(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, EditError> {
    let item = doc
        .as_table_mut()
        .entry("users")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().ok_or(EditError::NotAList)
}

fn find<'d>(doc: &'d mut DocumentMut, login: &str) -> Result<&'d mut Table, EditError> {
    users(doc)?
        .iter_mut()
        .find(|t| t.get("login").and_then(Item::as_str) == Some(login))
        .ok_or_else(|| EditError::NoSuchUser(login.to_string()))
}

/// Appends a `[[users]]` entry.
pub fn add_user(text: &str, user: &NewUser) -> Result<String, EditError> {
    let mut doc = document(text)?;
    if find(&mut doc, user.login).is_ok() {
        return Err(EditError::UserExists(user.login.to_string()));
    }
    let mut table = Table::new();
    table.insert("login", value(user.login));
    table.insert("name", value(user.name));
    table.insert("password", value(user.password_hash));
    if let Some(ext) = user.extension {
        match ext.parse::<i64>() {
            Ok(n) if !ext.starts_with('0') => table.insert("extension", value(n)),
            _ => table.insert("extension", value(ext)),
        };
    }
    if user.admin {
        table.insert("admin", value(true));
    }
    users(&mut doc)?.push(table);
    Ok(doc.to_string())
}

/// Replaces a user's password hash.
pub fn set_password(text: &str, login: &str, hash: &str) -> Result<String, EditError> {
    set_field(text, login, "password", hash)
}

/// Replaces a user's voicemail PIN hash.
pub fn set_pin(text: &str, login: &str, hash: &str) -> Result<String, EditError> {
    set_field(text, login, "voicemail_pin", hash)
}

fn set_field(text: &str, login: &str, key: &str, new: &str) -> Result<String, EditError> {
    let mut doc = document(text)?;
    let table = find(&mut doc, login)?;
    match table.get_mut(key).and_then(Item::as_value_mut) {
        // Keep the comment after the value, if any.
        Some(v) => {
            let decor = v.decor().clone();
            *v = toml_edit::Value::from(new);
            *v.decor_mut() = decor;
        }
        None => {
            table.insert(key, value(new));
        }
    }
    Ok(doc.to_string())
}

/// Replaces a user's phone digest hashes (`sip_ha1_md5`, `sip_ha1_sha256`).
pub fn set_sip_secret(
    text: &str,
    login: &str,
    md5: &str,
    sha256: &str,
) -> Result<String, EditError> {
    let text = set_field(text, login, "sip_ha1_md5", md5)?;
    set_field(&text, login, "sip_ha1_sha256", sha256)
}

/// A user's extension in a config text, if they have one (a number or a string there).
pub fn user_extension(text: &str, login: &str) -> Option<String> {
    let mut doc = document(text).ok()?;
    let table = find(&mut doc, login).ok()?;
    let item = table.get("extension")?;
    item.as_integer()
        .map(|n| n.to_string())
        .or_else(|| item.as_str().map(str::to_string))
}

/// The `network.domain` of a config text (the realm of the phone hashes), if it has one.
pub fn domain(text: &str) -> Option<String> {
    let doc = document(text).ok()?;
    doc.get("network")?
        .get("domain")?
        .as_str()
        .map(str::to_string)
}

/// Sets (or with `None` removes) a plain setting of a user: `name`, `extension` (written
/// as a number when it is one), `admin` ("true"/"false").
pub fn set_user_setting(
    text: &str,
    login: &str,
    key: &str,
    new: Option<&str>,
) -> Result<String, EditError> {
    let mut doc = document(text)?;
    let table = find(&mut doc, login)?;
    match new.map(str::trim).filter(|v| !v.is_empty()) {
        None => {
            table.remove(key);
        }
        Some(v) => {
            let flag = crate::schema::get(&format!("users[].{key}"))
                .is_some_and(|s| matches!(s.kind, crate::schema::Kind::Bool));
            let item = match (key, v) {
                // A yes/no setting (admin, fax, ...): anything but "true" is no.
                (_, v) if flag => value(v == "true"),
                ("extension", v) if !v.starts_with('0') && v.parse::<i64>().is_ok() => {
                    value(v.parse::<i64>().unwrap_or_default())
                }
                // Counts are integers (anything else is written as text, and the whole
                // file's check says what is wrong with it).
                ("outside_calls_at_once" | "outside_calls_per_day", v)
                    if v.parse::<i64>().is_ok() =>
                {
                    value(v.parse::<i64>().unwrap_or_default())
                }
                (_, v) => value(v),
            };
            table.insert(key, item);
        }
    }
    Ok(doc.to_string())
}

/// Sets the members of alias `name` in `[mail.aliases]` (creating the table), or removes
/// the alias when `members` is empty.
pub fn set_alias(text: &str, name: &str, members: &[String]) -> Result<String, EditError> {
    let mut doc = document(text)?;
    let mail = doc
        .as_table_mut()
        .entry("mail")
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(mail) = mail.as_table_mut() else {
        return Err(EditError::Syntax("`mail` is not a table".into()));
    };
    let aliases = mail
        .entry("aliases")
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(aliases) = aliases.as_table_mut() else {
        return Err(EditError::Syntax("`mail.aliases` is not a table".into()));
    };
    if members.is_empty() {
        aliases.remove(name);
    } else {
        let mut a = toml_edit::Array::new();
        for m in members {
            a.push(m.as_str());
        }
        aliases.insert(name, Item::Value(toml_edit::Value::Array(a)));
    }
    Ok(doc.to_string())
}

/// Removes a user's `[[users]]` entry.
pub fn remove_user(text: &str, login: &str) -> Result<String, EditError> {
    let mut doc = document(text)?;
    let list = users(&mut doc)?;
    let index = list
        .iter()
        .position(|t| t.get("login").and_then(Item::as_str) == Some(login))
        .ok_or_else(|| EditError::NoSuchUser(login.to_string()))?;
    list.remove(index);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"# my office
[network]
domain = "example.com" # ours

[[users]]
login = "admin"     # the boss
password = "old"    # keep this comment
admin = true

# phones below
[phone]
enabled = false
"#;

    #[test]
    fn add_keeps_comments_and_layout() {
        let new = NewUser {
            login: "alice",
            name: "Alice Example",
            password_hash: "h",
            extension: Some("101"),
            admin: false,
        };
        let out = add_user(BASE, &new).unwrap();
        assert!(out.starts_with("# my office\n[network]\ndomain = \"example.com\" # ours\n"));
        assert!(out.contains("# phones below\n[phone]"));
        assert!(out.contains(
            "[[users]]\nlogin = \"alice\"\nname = \"Alice Example\"\npassword = \"h\"\nextension = 101\n"
        ));
        assert_eq!(
            add_user(&out, &new),
            Err(EditError::UserExists("alice".into()))
        );
    }

    #[test]
    fn passwd_keeps_the_comment() {
        let out = set_password(BASE, "admin", "new").unwrap();
        assert!(
            out.contains("password = \"new\"    # keep this comment\n"),
            "{out}"
        );
        assert_eq!(
            set_password(BASE, "nobody", "x"),
            Err(EditError::NoSuchUser("nobody".into()))
        );
    }

    #[test]
    fn remove_deletes_only_that_user() {
        let out = remove_user(BASE, "admin").unwrap();
        assert!(!out.contains("login = \"admin\""));
        assert!(out.contains("# my office") && out.contains("[phone]"));
    }
}
