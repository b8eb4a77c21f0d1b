//! Server-rendered HTML (maud templates, which escape what they are given): the page
//! frame with the menu as the appliance's manual names it, and accessible form fields (a
//! label for each, errors tied to their field by `aria-describedby`). No JavaScript is
//! needed for anything.

use maud::{Markup, PreEscaped, Render, html};
use officebox_config::Diagnostic;

/// The menu: (path, title).
pub const MENU: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/network", "Network Settings"),
    ("/security", "Security Settings"),
    ("/dhcp", "Servers - DHCP"),
    ("/dns", "DNS Server"),
    ("/aliases", "Message Aliases"),
    ("/users", "Users"),
    ("/mail", "Mail"),
    ("/phones", "Phones"),
    ("/routing", "Phone Routing"),
    ("/sites", "Sites"),
    ("/calls", "Call Log"),
    ("/system", "Web and Time"),
    ("/backup", "Backup"),
    ("/history", "Config History"),
];

const STYLE: &str = "*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}\
header{background:#234;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;align-items:center;gap:.5em}header form{margin-left:auto}header a{color:#fff}\
nav{display:flex;flex-wrap:wrap;gap:.3em;padding:.5em 1em;background:#e3e7ee}\
nav a{padding:.3em .6em;border-radius:4px;text-decoration:none;color:#234}\
nav a[aria-current=page]{background:#234;color:#fff}\
main{max-width:46em;margin:1em auto;padding:0 1em}\
.field{margin:0 0 1em}label{display:block;font-weight:600}\
input[type=text],input[type=password],select{width:100%;max-width:24em;padding:.35em;font-size:1em}\
.help{color:#555;font-size:.9em;margin:.2em 0}\
.error{color:#a00;font-weight:600;margin:.2em 0}\
.flash{padding:.6em;border-radius:4px;background:#e6f4e6;border:1px solid #9c9}\
.flash.bad{background:#fbe9e9;border-color:#d99}\
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left}\
pre{background:#fff;border:1px solid #ddd;padding:.6em;overflow:auto}\
button{font-size:1em;padding:.4em 1em}\
.wide{overflow-x:auto;max-width:100%}section{margin-top:2em}\
@media (max-width:40em){main{margin:.5em auto;padding:0 .5em}td,th{padding:.2em .3em}}";

/// Where the pages' script is served (crates/web/src/admin.js).
pub const SCRIPT_PATH: &str = "/officebox.js";

/// A whole page: `title`, the menu (when logged in), an optional flash, the body.
pub fn page(
    title: &str,
    current: &str,
    logged_in: Option<(&str, &str)>,
    flash: Option<(&str, bool)>,
    body: Markup,
) -> Markup {
    frame(title, current, logged_in, true, flash, body)
}

/// A page of a user's own (`/me`): the frame without the admin pages' menu.
pub fn own_page(
    title: &str,
    logged_in: (&str, &str),
    flash: Option<(&str, bool)>,
    body: Markup,
) -> Markup {
    frame(title, "", Some(logged_in), false, flash, body)
}

fn frame(
    title: &str,
    current: &str,
    logged_in: Option<(&str, &str)>,
    menu: bool,
    flash: Option<(&str, bool)>,
    body: Markup,
) -> Markup {
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - officebox" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "officebox" }
                    @if let Some((user, csrf)) = logged_in {
                        (PreEscaped(" &middot; ")) (user) " "
                        form method="post" action="/logout" style="display:inline" {
                            (csrf_field(csrf))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                @if logged_in.is_some() && menu {
                    nav aria-label="Pages" {
                        @for (path, name) in MENU {
                            a href=(path) aria-current=[(*path == current).then_some("page")] { (name) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some((text, ok)) = flash {
                        p.flash.bad[!ok] role="alert" { (text) }
                    }
                    (body)
                }
                @if logged_in.is_some() {
                    script src=(SCRIPT_PATH) defer {}
                }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in every form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// The errors for one field, for beside it: each message with its help, joined
/// (`None` when there are none).
pub fn field_errors<'a>(diags: impl IntoIterator<Item = &'a Diagnostic>) -> Option<String> {
    let texts: Vec<String> = diags
        .into_iter()
        .map(|d| {
            if d.help.is_empty() {
                d.message.clone()
            } else {
                format!("{} ({})", d.message, d.help)
            }
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

/// Problems as list items: `path: message (help)`.
pub fn problem_items<'a>(diags: impl IntoIterator<Item = &'a Diagnostic>) -> Markup {
    html! {
        @for d in diags {
            li {
                (d.path) ": " (d.message)
                @if !d.help.is_empty() { " (" (d.help) ")" }
            }
        }
    }
}

/// The id of a field's error element.
pub fn error_id(name: &str) -> String {
    format!("{}-error", name.replace(['.', '[', ']'], "-"))
}

/// One labelled form field.
#[derive(Debug)]
pub struct Field<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub help: &'a str,
    pub value: &'a str,
    /// Shown greyed in an empty text field: what applies when it is left empty.
    pub placeholder: &'a str,
    pub error: Option<&'a str>,
    pub kind: Kind<'a>,
}

/// What kind of control: a select has (value, text) options.
#[derive(Debug)]
pub enum Kind<'a> {
    Text,
    Check,
    Select(&'a [(&'a str, &'a str)]),
}

impl Render for Field<'_> {
    fn render(&self) -> Markup {
        let id = self.name.replace(['.', '[', ']'], "-");
        let err_id = error_id(self.name);
        let help_id = format!("{id}-help");
        let described = match self.error {
            Some(_) => format!("{err_id} {help_id}"),
            None => help_id.clone(),
        };
        let invalid = self.error.is_some().then_some("true");
        let name = self.name;
        html! {
            div.field {
                label for=(id) { (self.label) }
                @match &self.kind {
                    Kind::Text => {
                        input type="text" id=(id) name=(name) value=(self.value)
                            placeholder=[(!self.placeholder.is_empty()).then_some(self.placeholder)]
                            aria-describedby=(described) aria-invalid=[invalid];
                    }
                    Kind::Check => {
                        input type="hidden" name=(name) value="false";
                        input type="checkbox" id=(id) name=(name) value="true"
                            checked[self.value == "true"]
                            aria-describedby=(described) aria-invalid=[invalid];
                    }
                    Kind::Select(options) => {
                        select id=(id) name=(name) aria-describedby=(described) aria-invalid=[invalid] {
                            @for (v, text) in *options {
                                option value=(v) selected[*v == self.value] { (text) }
                            }
                        }
                    }
                }
                @if let Some(e) = self.error {
                    p.error id=(err_id) { (e) }
                }
                p.help id=(help_id) { (self.help) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_the_user_is_escaped() {
        let p = page(
            "<title>",
            "/",
            Some(("<b>me</b>", "\"><x")),
            Some(("<i>note</i>", false)),
            html! { p { "&" } },
        )
        .into_string();
        assert!(
            p.contains("<title>&lt;title&gt; - officebox</title>"),
            "{p}"
        );
        assert!(p.contains(" &middot; &lt;b&gt;me&lt;/b&gt; "), "{p}");
        assert!(p.contains("name=\"csrf\" value=\"&quot;&gt;&lt;x\""), "{p}");
        assert!(
            p.contains("<p class=\"flash bad\" role=\"alert\">&lt;i&gt;note&lt;/i&gt;</p>"),
            "{p}"
        );
        assert!(
            p.contains("<a href=\"/\" aria-current=\"page\">Home</a>"),
            "{p}"
        );
        assert!(p.contains("<p>&amp;</p>"), "{p}");
        let f = Field {
            name: "network.hostname",
            label: "Host name",
            help: "one label",
            value: "\"><script>",
            placeholder: "",
            error: Some("bad <name>"),
            kind: Kind::Text,
        };
        let html = f.render().into_string();
        assert!(!html.contains("<script>"));
        assert!(html.contains("aria-describedby=\"network-hostname-error network-hostname-help\""));
        assert!(html.contains("id=\"network-hostname-error\">bad &lt;name&gt;</p>"));
        assert!(html.contains("<label for=\"network-hostname\">"));
    }
}
