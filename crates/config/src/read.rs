//! A reader over a parsed TOML document that keeps every value's position.
//!
//! Each section is read through a [`Section`]: asking for a key records it as known, so
//! when the section is finished every key nobody asked for is reported as unknown, with the
//! closest known key suggested. Type errors are recorded and reading goes on, so one pass
//! finds every problem in the file.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use crate::diag::{Sink, closest};

/// A value and the byte range it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// One table of the file (a `[section]`, an inline table, or one `[[entry]]`).
pub(crate) struct Section<'d> {
    table: &'d dyn TableLike,
    pub path: String,
    pub span: Range<usize>,
    known: Vec<&'static str>,
}

impl std::fmt::Debug for Section<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section").field("path", &self.path).finish()
    }
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => describe_value(v),
    }
}

fn describe_value(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number with a fraction",
        Value::Boolean(_) => "true/false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::InlineTable(_) => "a table",
    }
}

impl<'d> Section<'d> {
    pub(crate) fn root(table: &'d dyn TableLike) -> Self {
        Section {
            table,
            path: String::new(),
            span: 0..0,
            known: Vec::new(),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Path of `key` in this section, for messages about it.
    pub(crate) fn path_of(&self, key: &str) -> String {
        self.child_path(key)
    }

    fn item(&mut self, key: &'static str) -> Option<(&'d Item, Range<usize>)> {
        self.known.push(key);
        let (k, item) = self.table.get_key_value(key)?;
        let span = item
            .span()
            .or_else(|| k.span())
            .unwrap_or_else(|| self.span.clone());
        Some((item, span))
    }

    /// Whether the file sets `key` (does not mark it known).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Whether `key` holds a string (does not mark it known).
    pub(crate) fn is_string(&self, key: &str) -> bool {
        self.table
            .get(key)
            .and_then(Item::as_value)
            .is_some_and(|v| v.as_str().is_some())
    }

    /// Span of the key itself, or of the section when absent.
    pub(crate) fn key_span(&self, key: &str) -> Range<usize> {
        self.table
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .unwrap_or_else(|| self.span.clone())
    }

    fn value(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
        want: &str,
    ) -> Option<(&'d Value, Range<usize>)> {
        let (item, span) = self.item(key)?;
        match item.as_value() {
            Some(v) => Some((v, span)),
            None => {
                sink.error(
                    &span,
                    self.child_path(key),
                    format!("expected {want}, found {}", describe(item)),
                    "",
                );
                None
            }
        }
    }

    /// Reports a required setting that is missing.
    pub(crate) fn missing(&self, sink: &mut Sink, key: &str, help: &str) {
        sink.error(
            &self.span,
            self.child_path(key),
            "this setting is required but missing",
            help,
        );
    }

    pub(crate) fn string(&mut self, sink: &mut Sink, key: &'static str) -> Option<Spanned<String>> {
        let (v, span) = self.value(sink, key, "a string")?;
        match v.as_str() {
            Some(s) => Some(Spanned {
                value: s.to_string(),
                span,
            }),
            None => {
                sink.error(
                    &span,
                    self.child_path(key),
                    format!("expected a string, found {}", describe_value(v)),
                    "put the value in double quotes",
                );
                None
            }
        }
    }

    pub(crate) fn bool(&mut self, sink: &mut Sink, key: &'static str) -> Option<bool> {
        let (v, span) = self.value(sink, key, "true or false")?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                sink.error(
                    &span,
                    self.child_path(key),
                    format!("expected true or false, found {}", describe_value(v)),
                    "write true or false, without quotes",
                );
                None
            }
        }
    }

    /// A true/false setting, or its default from the schema.
    pub(crate) fn flag(&mut self, sink: &mut Sink, setting: &crate::schema::Setting) -> bool {
        self.bool(sink, setting.key()).unwrap_or(setting.bool())
    }

    /// An integer within `range`.
    pub(crate) fn int(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<Spanned<i64>> {
        let (v, span) = self.value(sink, key, "a whole number")?;
        let path = self.child_path(key);
        match v.as_integer() {
            Some(n) if range.contains(&n) => Some(Spanned { value: n, span }),
            Some(n) => {
                sink.error(
                    &span,
                    path,
                    format!("{n} is out of range"),
                    format!("use a number from {} to {}", range.start(), range.end()),
                );
                None
            }
            None => {
                sink.error(
                    &span,
                    path,
                    format!("expected a whole number, found {}", describe_value(v)),
                    format!("use a number from {} to {}", range.start(), range.end()),
                );
                None
            }
        }
    }

    /// A TCP/UDP port number (1-65535).
    pub(crate) fn port(&mut self, sink: &mut Sink, key: &'static str) -> Option<Spanned<u16>> {
        let n = self.int(sink, key, 1..=65535)?;
        Some(Spanned {
            value: u16::try_from(n.value).ok()?,
            span: n.span,
        })
    }

    /// A string parsed by `parse`, whose error text says what is wrong; `help` says what is right.
    pub(crate) fn parsed<T>(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
        help: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Spanned<T>> {
        let s = self.string(sink, key)?;
        parse_spanned(sink, &self.child_path(key), s, help, parse)
    }

    /// A list of strings, each parsed by `parse`.
    pub(crate) fn parsed_list<T>(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
        help: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<Spanned<T>>> {
        let list = self.string_list(sink, key)?;
        let path = self.child_path(key);
        Some(
            list.into_iter()
                .enumerate()
                .filter_map(|(i, s)| parse_spanned(sink, &format!("{path}[{i}]"), s, help, &parse))
                .collect(),
        )
    }

    /// A list of strings.
    pub(crate) fn string_list(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
    ) -> Option<Vec<Spanned<String>>> {
        let (v, span) = self.value(sink, key, "a list of strings")?;
        let path = self.child_path(key);
        let Some(array) = v.as_array() else {
            sink.error(
                &span,
                path,
                format!("expected a list of strings, found {}", describe_value(v)),
                "write a list in square brackets, e.g. [\"a\", \"b\"]",
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in array.iter().enumerate() {
            let ispan = item.span().unwrap_or_else(|| span.clone());
            match item.as_str() {
                Some(s) => out.push(Spanned {
                    value: s.to_string(),
                    span: ispan,
                }),
                None => sink.error(
                    &ispan,
                    format!("{path}[{i}]"),
                    format!("expected a string, found {}", describe_value(item)),
                    "put each entry in double quotes",
                ),
            }
        }
        Some(out)
    }

    /// A sub-table (`[a.b]` or `b = { ... }`).
    pub(crate) fn table(&mut self, sink: &mut Sink, key: &'static str) -> Option<Section<'d>> {
        let (item, span) = self.item(key)?;
        let path = self.child_path(key);
        match item.as_table_like() {
            Some(table) => Some(Section {
                table,
                path,
                span,
                known: Vec::new(),
            }),
            None => {
                sink.error(
                    &span,
                    path,
                    format!("expected a table, found {}", describe(item)),
                    format!("write it as a [{}] section", self.child_path(key)),
                );
                None
            }
        }
    }

    /// A list of tables: `[[key]]` entries, or a list of inline tables.
    pub(crate) fn tables(&mut self, sink: &mut Sink, key: &'static str) -> Vec<Section<'d>> {
        let Some((item, span)) = self.item(key) else {
            return Vec::new();
        };
        let path = self.child_path(key);
        let entry = |i: usize, table: &'d dyn TableLike, span: Range<usize>| Section {
            table,
            path: format!("{path}[{i}]"),
            span,
            known: Vec::new(),
        };
        if let Some(aot) = item.as_array_of_tables() {
            return aot
                .iter()
                .enumerate()
                .map(|(i, t)| entry(i, t, t.span().unwrap_or_else(|| span.clone())))
                .collect();
        }
        if let Some(array) = item.as_array() {
            let mut out = Vec::new();
            for (i, v) in array.iter().enumerate() {
                let vspan = v.span().unwrap_or_else(|| span.clone());
                match v.as_inline_table() {
                    Some(t) => out.push(entry(i, t, vspan)),
                    None => sink.error(
                        &vspan,
                        format!("{path}[{i}]"),
                        format!("expected a table, found {}", describe_value(v)),
                        "write each entry as { key = value, ... }",
                    ),
                }
            }
            return out;
        }
        sink.error(
            &span,
            path.clone(),
            format!("expected a list of tables, found {}", describe(item)),
            format!("write each entry under its own [[{path}]] header"),
        );
        Vec::new()
    }

    /// Every key of this table with its span, for sections whose keys are names (aliases).
    pub(crate) fn entries(&mut self) -> Vec<(String, Range<usize>, &'d Item)> {
        let span = self.span.clone();
        let mut out = Vec::new();
        for (name, item) in self.table.iter() {
            let kspan = self
                .table
                .key(name)
                .and_then(|k| k.span())
                .unwrap_or_else(|| span.clone());
            out.push((name.to_string(), kspan, item));
        }
        self.known.clear();
        self.known.push("*");
        out
    }

    /// Reports every key that was never asked for, with the closest known key.
    pub(crate) fn finish(self, sink: &mut Sink) {
        if self.known.contains(&"*") {
            return;
        }
        for (name, _) in self.table.iter() {
            if self.known.contains(&name) {
                continue;
            }
            let span = self.key_span(name);
            let path = self.child_path(name);
            let place = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", self.path)
            };
            let help = match closest(name, &self.known) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("known settings {place}: {}", self.known.join(", ")),
            };
            sink.error(
                &span,
                path,
                format!("unknown setting `{name}` {place}"),
                help,
            );
        }
    }
}

pub(crate) fn parse_spanned<T>(
    sink: &mut Sink,
    path: &str,
    s: Spanned<String>,
    help: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Spanned<T>> {
    match parse(&s.value) {
        Ok(value) => Some(Spanned {
            value,
            span: s.span,
        }),
        Err(message) => {
            sink.error(&s.span, path, message, help);
            None
        }
    }
}
