//! The auto attendants' recorded greetings, on the Phone Routing page: a WAV uploaded
//! for an attendant (any rate and channels: it is kept as the phone's 8 kHz mono) is
//! what the attendant says, whatever its text; deleting it brings the text (or
//! `greeting_file`) back. An administrator can also record one from a phone, in the
//! voicemail menu. `POST /attendants/{name}/greeting` (multipart, the CSRF token in the
//! query) and `POST /attendants/{name}/greeting/delete`.

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use officebox_config::Config;
use officebox_store::attendant_greeting_path as recorded_path;
use officebox_store::wav;
use tracing::info;

use crate::app::Shared;
use crate::routes::{Me, page, redirect};

/// The largest upload: two minutes of CD-quality stereo, with room to spare.
pub(crate) const MAX_UPLOAD: usize = 24 * 1024 * 1024;
/// The longest greeting kept.
const MAX_SECONDS: usize = 120;

/// Each attendant's greeting: recorded (how long) or its text, and the forms.
pub(crate) fn section(config: &Config, csrf: &str) -> Markup {
    let attendants = &config.phone.dial_plan.attendants;
    html! {
        @if !attendants.is_empty() {
            h2 { "Attendant greetings" }
            p.help {
                "A recording uploaded here (a WAV file) or made from a phone (an administrator's "
                "voicemail menu, key 5) is what the attendant says; without one it speaks its text."
            }
            table {
                thead { tr { th { "Attendant" } th { "Greeting" } th { "Upload a WAV" } th {} } }
                tbody {
                    @for a in attendants {
                        @let recorded = recorded_seconds(&config.data_dir, &a.name);
                        tr {
                            td { (a.name) }
                            td {
                                @match recorded {
                                    Some(s) => { "recorded, " (s / 60) ":" (format!("{:02}", s % 60)) }
                                    None => @match &a.greeting {
                                        officebox_config::dialplan::Greeting::Text(t) => { "spoken: \u{201c}" (t) "\u{201d}" }
                                        officebox_config::dialplan::Greeting::File(f) => { "the file " (f.display()) }
                                    },
                                }
                            }
                            td {
                                form method="post" enctype="multipart/form-data"
                                    action={ "/attendants/" (a.name) "/greeting?csrf=" (csrf) } {
                                    input type="file" name="greeting" accept="audio/wav,.wav" required;
                                    button type="submit" { "Upload" }
                                }
                            }
                            td {
                                @if recorded.is_some() {
                                    form method="post" action={ "/attendants/" (a.name) "/greeting/delete" } {
                                        (crate::html::csrf_field(csrf))
                                        button type="submit" { "Delete the recording" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How long attendant `name`'s recorded greeting is, if it has one.
fn recorded_seconds(data_dir: &std::path::Path, name: &str) -> Option<usize> {
    let bytes = std::fs::read(recorded_path(data_dir, name)).ok()?;
    let samples = wav::read_any_wav(&bytes).ok()?;
    Some(samples.len() / 8000)
}

/// The Phone Routing page again, saying why an upload was refused.
async fn refused(app: &Shared, me: &Me, why: &str) -> Response {
    let config = app.config();
    let Some(def) = crate::settings::page("/routing") else {
        return page(StatusCode::BAD_REQUEST, html! { p { (why) } });
    };
    let html =
        crate::pages::settings::render(app, &config, def, me, None, &[], Some((why, false)), None)
            .await;
    page(StatusCode::BAD_REQUEST, html)
}

/// `POST /attendants/{name}/greeting`: the file in field `greeting`, checked, converted
/// and kept.
pub(crate) async fn upload(
    State(app): State<Shared>,
    me: Me,
    Path(name): Path<String>,
    mut form: Multipart,
) -> Response {
    let config = app.config();
    if !config
        .phone
        .dial_plan
        .attendants
        .iter()
        .any(|a| a.name == name)
    {
        return refused(&app, &me, &format!("There is no attendant called {name}.")).await;
    }
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("greeting") => match field.bytes().await {
                Ok(b) => file = Some(b),
                Err(e) => return refused(&app, &me, &format!("The upload failed: {e}")).await,
            },
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return refused(&app, &me, &format!("The upload failed: {e}")).await,
        }
    }
    let Some(file) = file else {
        return refused(&app, &me, "Choose a WAV file to upload.").await;
    };
    let samples = match wav::read_any_wav(&file) {
        Ok(s) if s.is_empty() => return refused(&app, &me, "That WAV file holds no sound.").await,
        Ok(s) if s.len() > MAX_SECONDS * 8000 => {
            return refused(&app, &me, "A greeting may be two minutes long at most.").await;
        }
        Ok(s) => s,
        Err(e) => {
            return refused(
                &app,
                &me,
                &format!(
                    "That is not a WAV file the phones can play ({e}); save it as 16-bit PCM WAV."
                ),
            )
            .await;
        }
    };
    let path = recorded_path(&config.data_dir, &name);
    let written = tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        officebox_store::write_atomic(&path, &wav::write_wav(&samples), 0o644)
            .map_err(std::io::Error::other)
    })
    .await;
    match written {
        Ok(Ok(())) => {
            info!(message = "web: attendant greeting uploaded", attendant = %name, user = %me.user);
            redirect("/routing?saved=1")
        }
        Ok(Err(e)) => refused(&app, &me, &format!("The greeting could not be saved: {e}")).await,
        Err(e) => refused(&app, &me, &format!("The greeting could not be saved: {e}")).await,
    }
}

/// `POST /attendants/{name}/greeting/delete`: the recording goes; the text speaks again.
pub(crate) async fn delete(
    State(app): State<Shared>,
    me: Me,
    Path(name): Path<String>,
) -> Response {
    let config = app.config();
    if config
        .phone
        .dial_plan
        .attendants
        .iter()
        .any(|a| a.name == name)
    {
        let path = recorded_path(&config.data_dir, &name);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        info!(message = "web: attendant greeting deleted", attendant = %name, user = %me.user);
    }
    redirect("/routing?saved=1")
}
