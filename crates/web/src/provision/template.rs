//! The phones' files are templates: `{{name}}` is a value, and `{{#list}}...{{/list}}`
//! repeats its text for each item of a list, whose values are named inside it. Every
//! value is escaped for the file's format, so a user's name cannot add a setting. A
//! template that names something unknown is refused whole (the built-in one is used).

use std::fmt;

/// How values are written into a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// XML: `<`, `>`, `&`, `"` and `'` as entities; control characters dropped.
    Xml,
    /// `key = value` lines: line breaks and other control characters dropped.
    Lines,
}

/// The values and lists a template is filled with.
#[derive(Debug, Default)]
pub(crate) struct Vars {
    values: Vec<(&'static str, String)>,
    lists: Vec<(&'static str, Vec<Vars>)>,
}

impl Vars {
    pub(crate) fn set(&mut self, name: &'static str, value: impl fmt::Display) -> &mut Vars {
        self.values.push((name, value.to_string()));
        self
    }

    pub(crate) fn list(&mut self, name: &'static str, items: Vec<Vars>) -> &mut Vars {
        self.lists.push((name, items));
        self
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn items(&self, name: &str) -> Option<&[Vars]> {
        self.lists
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("`{{{{{0}}}}}` is not a value this file has")]
    Unknown(String),
    #[error("`{{{{#{0}}}}}` is not closed by `{{{{/{0}}}}}`")]
    Unclosed(String),
    #[error("a `{{{{` is not closed by `}}}}`")]
    Open,
}

/// `template` filled with `vars`, values escaped for `format`.
pub(crate) fn render(template: &str, vars: &Vars, format: Format) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() * 2);
    fill(template, &[vars], format, &mut out)?;
    Ok(out)
}

/// Fills `text` into `out`; a name is looked up in the innermost scope first.
fn fill(
    text: &str,
    scopes: &[&Vars],
    format: Format,
    out: &mut String,
) -> Result<(), TemplateError> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let end = after.find("}}").ok_or(TemplateError::Open)?;
        let name = after.get(..end).unwrap_or_default().trim();
        rest = after.get(end + 2..).unwrap_or_default();
        if let Some(list) = name.strip_prefix('#') {
            let close = format!("{{{{/{list}}}}}");
            let body_end = rest
                .find(&close)
                .ok_or_else(|| TemplateError::Unclosed(list.to_string()))?;
            let body = rest.get(..body_end).unwrap_or_default();
            rest = rest.get(body_end + close.len()..).unwrap_or_default();
            let items = scopes
                .iter()
                .rev()
                .find_map(|s| s.items(list))
                .ok_or_else(|| TemplateError::Unknown(format!("#{list}")))?;
            for item in items {
                let mut inner = scopes.to_vec();
                inner.push(item);
                fill(body, &inner, format, out)?;
            }
        } else {
            let value = scopes
                .iter()
                .rev()
                .find_map(|s| s.value(name))
                .ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
            escape(value, format, out);
        }
    }
    out.push_str(rest);
    Ok(())
}

/// `value` as XML character data or an attribute value (control characters left out).
pub(crate) fn xml_escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    escape(value, Format::Xml, &mut out);
    out
}

fn escape(value: &str, format: Format, out: &mut String) {
    for c in value.chars().filter(|c| !c.is_control()) {
        match (format, c) {
            (Format::Xml, '<') => out.push_str("&lt;"),
            (Format::Xml, '>') => out.push_str("&gt;"),
            (Format::Xml, '&') => out.push_str("&amp;"),
            (Format::Xml, '"') => out.push_str("&quot;"),
            (Format::Xml, '\'') => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_and_escapes() {
        let mut key = Vars::default();
        key.set("n", 1).set("name", "Bob <b>");
        let mut v = Vars::default();
        v.set("name", "Alice\nx = 1")
            .set("server", "10.0.0.1")
            .list("keys", vec![key]);
        assert_eq!(
            render(
                "a={{name}}\n{{#keys}}k{{n}}={{name}}@{{server}};{{/keys}}",
                &v,
                Format::Lines
            )
            .unwrap(),
            "a=Alicex = 1\nk1=Bob <b>@10.0.0.1;"
        );
        assert_eq!(
            render(
                "<n a=\"{{name}}\">{{#keys}}{{name}}{{/keys}}</n>",
                &v,
                Format::Xml
            )
            .unwrap(),
            "<n a=\"Alicex = 1\">Bob &lt;b&gt;</n>"
        );
        assert_eq!(
            render("{{password}}", &v, Format::Lines),
            Err(TemplateError::Unknown("password".into()))
        );
        assert_eq!(
            render("{{#keys}}x", &v, Format::Lines),
            Err(TemplateError::Unclosed("keys".into()))
        );
        assert_eq!(
            render("{{name", &v, Format::Lines),
            Err(TemplateError::Open)
        );
    }
}
