//! Submitted forms: the body of a POST is read once (at most [`MAX_BODY`] bytes) by a
//! middleware that leaves its pairs in the request; handlers take them typed with
//! [`Form`] (serde, the last value of a name winning, as a checkbox after its hidden
//! "false" needs) or whole with [`Pairs`] (the settings pages, whose fields are data).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;

/// The largest form accepted.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// `application/x-www-form-urlencoded` pairs (`+` is a space; a bad `%` escape is kept
/// as it is; invalid UTF-8 is replaced).
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The last value of `name` in a form (a checkbox sends a hidden "false" first).
pub(crate) fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A request's form pairs (none for a request that is not a POST).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pairs(pub Arc<Vec<(String, String)>>);

impl Pairs {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        value(&self.0, name)
    }
}

/// Reads a POST's form into the request's extensions (a body over [`MAX_BODY`] is
/// refused with 413 before anything else looks at the request). A file upload
/// (`multipart/form-data`) is left to its handler, which limits its own size; its CSRF
/// token comes in the query, which stands for its pairs.
pub(crate) async fn read(req: Request, next: Next) -> Response {
    let multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if req.method() == Method::POST && multipart {
        let (mut parts, body) = req.into_parts();
        let pairs = form(parts.uri.query().unwrap_or("").as_bytes());
        parts.extensions.insert(Pairs(Arc::new(pairs)));
        return next.run(Request::from_parts(parts, body)).await;
    }
    let (mut parts, body) = req.into_parts();
    let pairs = if parts.method == Method::POST {
        match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => form(&b.to_bytes()),
            Err(_) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    [(CONTENT_TYPE, "text/html; charset=utf-8")],
                    "form too large",
                )
                    .into_response();
            }
        }
    } else {
        Vec::new()
    };
    parts.extensions.insert(Pairs(Arc::new(pairs)));
    next.run(Request::from_parts(parts, axum::body::Body::empty()))
        .await
}

impl<S: Send + Sync> FromRequestParts<S> for Pairs {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Pairs>().cloned().unwrap_or_default())
    }
}

/// A form as a typed value: every field a `String` (the struct `#[serde(default)]`, so
/// a missing one is empty), the last value of a repeated name winning.
#[derive(Debug)]
pub(crate) struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Form<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(Pairs(pairs)) = Pairs::from_request_parts(parts, state).await;
        // Last wins: keep each name's last value only.
        let mut last: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs.iter().rev() {
            if !last.iter().any(|(seen, _)| *seen == k.as_str()) {
                last.push((k.as_str(), v.as_str()));
            }
        }
        T::deserialize(MapDeserializer::<_, serde::de::value::Error>::new(
            last.into_iter(),
        ))
        .map(Form)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())
    }
}

/// A checkbox's value: on when it says "true".
pub(crate) fn checked(v: &str) -> bool {
    v == "true"
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_percent_and_odd_input() {
        let f = form(b"a=1+2&b=%3Cx%3E&c=%zz&d&e=%4");
        assert_eq!(f[0], ("a".into(), "1 2".into()));
        assert_eq!(f[1], ("b".into(), "<x>".into()));
        assert_eq!(f[2], ("c".into(), "%zz".into()));
        assert_eq!(f[3], ("d".into(), String::new()));
        assert_eq!(f[4], ("e".into(), "%4".into()));
        assert_eq!(value(&form(b"x=false&x=true"), "x"), Some("true"));
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Login {
        user: String,
        admin: String,
    }

    #[test]
    fn a_typed_form_takes_the_last_value_and_defaults_what_is_missing() {
        let mut parts = axum::http::Request::new(()).into_parts().0;
        parts
            .extensions
            .insert(Pairs(Arc::new(form(b"admin=false&admin=true&csrf=x"))));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Form(l) = rt
            .block_on(Form::<Login>::from_request_parts(&mut parts, &()))
            .unwrap();
        assert_eq!(l.user, "");
        assert!(checked(&l.admin));
    }
}
