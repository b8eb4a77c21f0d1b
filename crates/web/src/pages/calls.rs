//! The Call Log page (`GET /calls`): the calls newest first, filtered by the GET query
//! (`since` and `until` as YYYY-MM-DD, `extension`, `disposition`, `page`), a page of
//! [`PER_PAGE`] at a time; and the same selection, every row of it, as CSV
//! (`GET /calls.csv`).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use officebox_store::date::{datetime, parse_day};
use officebox_store::{CallQuery, CallRecord, Direction, Disposition};

use crate::app::Shared;
use crate::routes::{Me, page};

/// Calls on one page.
pub(crate) const PER_PAGE: u32 = 50;

/// The filters as the form sent them (kept as written, to show them again).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Filters {
    since: String,
    until: String,
    extension: String,
    disposition: String,
    /// From 1.
    page: u32,
}

impl Filters {
    /// From the URL's query; unknown keys are ignored.
    pub(crate) fn parse(query: Option<&str>) -> Filters {
        let mut f = Filters {
            page: 1,
            ..Filters::default()
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let v = v.trim().to_string();
            match &*k {
                "since" => f.since = v,
                "until" => f.until = v,
                "extension" => f.extension = v,
                "disposition" => f.disposition = v,
                "page" => f.page = v.parse().unwrap_or(1).max(1),
                _ => {}
            }
        }
        f
    }

    /// The store's query for these filters (without paging), and what was not
    /// understood (that filter is left out).
    pub(crate) fn query(&self) -> (CallQuery, Vec<String>) {
        let mut problems = Vec::new();
        let mut day = |name: &str, text: &str| -> Option<i64> {
            if text.is_empty() {
                return None;
            }
            let d = parse_day(text);
            if d.is_none() {
                problems.push(format!("{name} \"{text}\" is not a day like 2026-12-31"));
            }
            d
        };
        let since = day("From", &self.since);
        // Until a day: to its end.
        let until = day("To", &self.until).map(|d| d + 86_400);
        let disposition = if self.disposition.is_empty() {
            None
        } else {
            let d = self.disposition.parse::<Disposition>().ok();
            if d.is_none() {
                problems.push(format!("\"{}\" is not a disposition", self.disposition));
            }
            d
        };
        let q = CallQuery {
            since,
            until,
            party: (!self.extension.is_empty()).then(|| self.extension.clone()),
            disposition,
            ..CallQuery::default()
        };
        (q, problems)
    }

    /// The query string of these filters, on page `page` (`None`: no page, as for CSV).
    fn to_query(&self, page: Option<u32>) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("since", &self.since),
            ("until", &self.until),
            ("extension", &self.extension),
            ("disposition", &self.disposition),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some(p) = page {
            s.append_pair("page", &p.to_string());
        }
        s.finish()
    }
}

/// `GET /calls`.
pub(crate) async fn show(State(app): State<Shared>, me: Me, RawQuery(raw): RawQuery) -> Response {
    let filters = Filters::parse(raw.as_deref());
    let (mut q, problems) = filters.query();
    q.limit = PER_PAGE;
    q.offset = (filters.page - 1).saturating_mul(PER_PAGE);
    let read = app
        .store
        .with(move |db| Ok((db.call_log(&q)?, db.count_calls(&q)?)))
        .await;
    let body = render(&filters, &problems, read);
    page(
        StatusCode::OK,
        crate::html::page("Call Log", "/calls", Some(me.pair()), None, body),
    )
}

/// `GET /calls.csv`: every call the filters select, as CSV with a header row.
pub(crate) async fn csv(State(app): State<Shared>, _me: Me, RawQuery(raw): RawQuery) -> Response {
    let (q, _) = Filters::parse(raw.as_deref()).query();
    match app.store.with(move |db| db.call_log(&q)).await {
        Some(calls) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8"),
                (CONTENT_DISPOSITION, "attachment; filename=\"calls.csv\""),
            ],
            officebox_store::call_log_csv(&calls),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The call log cannot be read just now.\n",
        )
            .into_response(),
    }
}

/// The page's body: the filter form, the table, the pages.
fn render(filters: &Filters, problems: &[String], read: Option<(Vec<CallRecord>, u64)>) -> Markup {
    let selected = |d: &str| filters.disposition == d;
    html! {
        p { "Every call through the box, newest first. Times are UTC." }
        form method="get" action="/calls" id="filters" {
            div.field {
                label for="since" { "From (day)" }
                input type="date" id="since" name="since" value=(filters.since) placeholder="2026-12-01";
            }
            div.field {
                label for="until" { "To (day)" }
                input type="date" id="until" name="until" value=(filters.until) placeholder="2026-12-31";
            }
            div.field {
                label for="extension" { "Extension or user" }
                input type="text" id="extension" name="extension" value=(filters.extension);
            }
            div.field {
                label for="disposition" { "How it ended" }
                select id="disposition" name="disposition" {
                    option value="" selected[selected("")] { "any" }
                    @for d in Disposition::ALL {
                        option value=(d.as_str()) selected[selected(d.as_str())] { (d.describe()) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @for p in problems {
            p.error role="alert" { (p) " (left out)" }
        }
        @match read {
            None => p { "The call log cannot be read just now." },
            Some((calls, total)) => {
                p {
                    (total) (if total == 1 { " call" } else { " calls" }) ". "
                    a href={ "/calls.csv" @let q = filters.to_query(None); @if !q.is_empty() { "?" (q) } } id="csv" {
                        "Download CSV"
                    }
                }
                @if calls.is_empty() {
                    p { "No call matches." }
                } @else {
                    div.wide {
                        table id="calls" {
                            tr {
                                th { "Start" } th { "From" } th { "To" } th { "Answered by" }
                                th { "Duration" } th { "Disposition" }
                            }
                            @for c in &calls {
                                (row(c))
                            }
                        }
                    }
                }
                (pages(filters, total))
            }
        }
    }
}

/// One call.
fn row(c: &CallRecord) -> Markup {
    let answered_by = match (&c.answered_by, c.answered_at, c.disposition) {
        (Some(login), _, _) => login.clone(),
        (None, Some(_), Some(Disposition::Menu)) => "voicemail menu".into(),
        (None, Some(_), Some(Disposition::Attendant)) => "auto attendant".into(),
        (None, Some(_), Some(Disposition::Feature)) => "the box".into(),
        (None, Some(_), _) if c.direction == Direction::Out => "the number called".into(),
        (None, Some(_), _) => "voicemail".into(),
        (None, None, _) => String::new(),
    };
    let duration = c
        .talk_secs()
        .map(|s| format!("{}:{:02}", s / 60, s % 60))
        .unwrap_or_default();
    let class = c
        .disposition
        .map_or("in-progress", officebox_store::Disposition::as_str);
    html! {
        tr class=(class) {
            td { (datetime(c.started_at)) }
            td {
                (c.caller)
                @if !c.caller_name.is_empty() && c.caller_name != c.caller {
                    " (" (c.caller_name) ")"
                }
            }
            td {
                (c.callee)
                @if let Some(t) = &c.trunk { " via " (t) }
            }
            td { (answered_by) }
            td { (duration) }
            td { (c.outcome()) }
        }
    }
}

/// Links to the newer and older pages.
fn pages(filters: &Filters, total: u64) -> Markup {
    let pages = total.div_ceil(u64::from(PER_PAGE)).max(1);
    let at = u64::from(filters.page);
    html! {
        @if pages > 1 || at > 1 {
            nav aria-label="Call log pages" {
                @if at > 1 {
                    a href={ "/calls?" (filters.to_query(Some(filters.page - 1))) } rel="prev" { "Newer" }
                    " "
                }
                "Page " (at) " of " (pages)
                @if at < pages {
                    " "
                    a href={ "/calls?" (filters.to_query(Some(filters.page + 1))) } rel="next" { "Older" }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(caller_name: &str) -> CallRecord {
        CallRecord {
            id: 1,
            call_id: "c".into(),
            direction: Direction::Internal,
            trunk: None,
            caller: "101".into(),
            caller_login: Some("alice".into()),
            caller_name: caller_name.into(),
            callee: "102".into(),
            callee_login: Some("bob".into()),
            answered_by: None,
            started_at: 1_795_854_600,
            answered_at: Some(1_795_854_603),
            ended_at: Some(1_795_854_675),
            disposition: Some(Disposition::Voicemail),
        }
    }

    #[test]
    fn filters_come_from_the_query_and_go_back_into_links() {
        let f = Filters::parse(Some(
            "since=2026-11-28&until=2026-11-28&extension=+102+&disposition=busy&page=3&x=1",
        ));
        let (q, problems) = f.query();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(q.since, Some(1_795_824_000));
        assert_eq!(q.until, Some(1_795_824_000 + 86_400), "to the day's end");
        assert_eq!(q.party.as_deref(), Some("102"));
        assert_eq!(q.disposition, Some(Disposition::Busy));
        assert_eq!(f.page, 3);
        assert_eq!(
            f.to_query(Some(2)),
            "since=2026-11-28&until=2026-11-28&extension=102&disposition=busy&page=2"
        );
        let f = Filters::parse(Some("since=yesterday&disposition=lost&page=-1"));
        let (q, problems) = f.query();
        assert_eq!((q.since, q.disposition, f.page), (None, None, 1));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(Filters::parse(None).to_query(None), "");
    }

    #[test]
    fn the_table_escapes_what_callers_send_and_pages_link_with_the_filters() {
        let f = Filters::parse(Some("extension=<b>&page=2"));
        let html = render(&f, &[], Some((vec![record("<script>x</script>")], 120))).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("101 (&lt;script&gt;x&lt;/script&gt;)"),
            "{html}"
        );
        assert!(html.contains("value=\"&lt;b&gt;\""), "{html}");
        assert!(html.contains("<td>2026-11-28 08:30:00</td>"), "{html}");
        assert!(
            html.contains("<td>voicemail</td><td>1:12</td><td>voicemail left</td>"),
            "{html}"
        );
        assert!(
            html.contains("href=\"/calls.csv?extension=%3Cb%3E\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"/calls?extension=%3Cb%3E&amp;page=1\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"/calls?extension=%3Cb%3E&amp;page=3\""),
            "{html}"
        );
        assert!(html.contains("Page 2 of 3"), "{html}");
    }
}
