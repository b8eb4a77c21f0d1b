//! Server-rendered HTML: escaping, the page frame with the menu as the appliance's manual
//! names it, and accessible form fields (a label for each, errors tied to their field by
//! `aria-describedby`). No JavaScript is needed for anything.

use std::fmt::Write as _;

use officebox_config::Diagnostic;

/// Text made safe for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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
    ("/system", "Web and Time"),
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
    body: &str,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} - officebox</title><style>{STYLE}</style></head><body>\
         <header><strong>officebox</strong>",
        escape(title)
    );
    if let Some((user, csrf)) = logged_in {
        let _ = write!(
            out,
            " &middot; {} <form method=\"post\" action=\"/logout\" style=\"display:inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form>",
            escape(user),
            escape(csrf)
        );
    }
    out.push_str("</header>");
    if logged_in.is_some() {
        out.push_str("<nav aria-label=\"Pages\">");
        for (path, name) in MENU {
            let current_attr = if *path == current {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<a href=\"{path}\"{current_attr}>{}</a>", escape(name));
        }
        out.push_str("</nav>");
    }
    let _ = write!(out, "<main><h1>{}</h1>", escape(title));
    if let Some((text, ok)) = flash {
        let _ = write!(
            out,
            "<p class=\"flash{}\" role=\"alert\">{}</p>",
            if ok { "" } else { " bad" },
            escape(text)
        );
    }
    out.push_str(body);
    out.push_str("</main>");
    if logged_in.is_some() {
        let _ = write!(out, "<script src=\"{SCRIPT_PATH}\" defer></script>");
    }
    out.push_str("</body></html>");
    out
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

/// Problems as list items: `path: message (help)`, escaped.
pub fn problem_items<'a>(diags: impl IntoIterator<Item = &'a Diagnostic>) -> String {
    let mut out = String::new();
    for d in diags {
        let _ = write!(out, "<li>{}: {}", escape(&d.path), escape(&d.message));
        if !d.help.is_empty() {
            let _ = write!(out, " ({})", escape(&d.help));
        }
        out.push_str("</li>");
    }
    out
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

impl Field<'_> {
    pub fn render(&self) -> String {
        let id = self.name.replace(['.', '[', ']'], "-");
        let err_id = error_id(self.name);
        let help_id = format!("{id}-help");
        let mut described = vec![help_id.clone()];
        if self.error.is_some() {
            described.insert(0, err_id.clone());
        }
        let aria = format!(
            " aria-describedby=\"{}\"{}",
            described.join(" "),
            if self.error.is_some() {
                " aria-invalid=\"true\""
            } else {
                ""
            }
        );
        let name = escape(self.name);
        let control = match &self.kind {
            Kind::Text => format!(
                "<input type=\"text\" id=\"{id}\" name=\"{name}\" value=\"{}\"{}{aria}>",
                escape(self.value),
                if self.placeholder.is_empty() {
                    String::new()
                } else {
                    format!(" placeholder=\"{}\"", escape(self.placeholder))
                }
            ),
            Kind::Check => format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"false\">\
                 <input type=\"checkbox\" id=\"{id}\" name=\"{name}\" value=\"true\"{}{aria}>",
                if self.value == "true" { " checked" } else { "" }
            ),
            Kind::Select(options) => {
                let mut s = format!("<select id=\"{id}\" name=\"{name}\"{aria}>");
                for (v, text) in *options {
                    let _ = write!(
                        s,
                        "<option value=\"{}\"{}>{}</option>",
                        escape(v),
                        if *v == self.value { " selected" } else { "" },
                        escape(text)
                    );
                }
                s.push_str("</select>");
                s
            }
        };
        let error = self
            .error
            .map(|e| format!("<p class=\"error\" id=\"{err_id}\">{}</p>", escape(e)))
            .unwrap_or_default();
        format!(
            "<div class=\"field\"><label for=\"{id}\">{}</label>{control}{error}\
             <p class=\"help\" id=\"{help_id}\">{}</p></div>",
            escape(self.label),
            escape(self.help)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_the_user_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let f = Field {
            name: "network.hostname",
            label: "Host name",
            help: "one label",
            value: "\"><script>",
            placeholder: "",
            error: Some("bad <name>"),
            kind: Kind::Text,
        };
        let html = f.render();
        assert!(!html.contains("<script>"));
        assert!(html.contains("aria-describedby=\"network-hostname-error network-hostname-help\""));
        assert!(html.contains("id=\"network-hostname-error\">bad &lt;name&gt;</p>"));
        assert!(html.contains("<label for=\"network-hostname\">"));
    }
}
