//! The sounds of the phone system on the Phone Routing page: the auto attendants'
//! recorded greetings and the music on hold. A WAV uploaded for an attendant (any rate
//! and channels: it is kept as the phone's 8 kHz mono) is what the attendant says,
//! whatever its text; deleting it brings the text (or `greeting_file`) back. An
//! administrator can also record one from a phone, in the voicemail menu. A WAV uploaded
//! as music on hold wins over `phone.music_on_hold`'s file and the built-in tune.
//! `POST /attendants/{name}/greeting` and `POST /music-on-hold` (multipart, the CSRF
//! token in the query), and `.../delete` for each.

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use officebox_config::Config;
use officebox_config::model::MusicOnHold;
use officebox_store::attendant_greeting_path as recorded_path;
use officebox_store::music_on_hold_path;
use officebox_store::wav;
use tracing::info;

use crate::app::Shared;
use crate::routes::{Me, page, redirect};

/// The largest upload: two minutes of CD-quality stereo, with room to spare.
pub(crate) const MAX_UPLOAD: usize = 24 * 1024 * 1024;
/// The longest greeting kept.
const MAX_SECONDS: usize = 120;
/// The longest music on hold kept (it plays round and round).
const MAX_MUSIC_SECONDS: usize = 600;

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

/// The music on hold: what plays (uploaded, how long; the file; the tune; off), and
/// the forms.
pub(crate) fn music_section(config: &Config, csrf: &str) -> Markup {
    let uploaded = seconds_of(&music_on_hold_path(&config.data_dir));
    html! {
        h2 { "Music on hold" }
        p.help {
            "What a caller hears while put on hold. A WAV file uploaded here wins over the "
            "Music on hold setting."
        }
        p {
            @match (uploaded, &config.phone.music_on_hold) {
                (_, MusicOnHold::Off) => { "Off: the other phone is told of the hold." }
                (Some(s), _) => { "Uploaded, " (s / 60) ":" (format!("{:02}", s % 60)) "." }
                (None, MusicOnHold::BuiltIn) => { "The built-in tune." }
                (None, MusicOnHold::File(f)) => { "The file " (f.display()) "." }
            }
        }
        form method="post" enctype="multipart/form-data"
            action={ "/music-on-hold?csrf=" (csrf) } {
            input type="file" name="music" accept="audio/wav,.wav" required;
            button type="submit" { "Upload" }
        }
        @if uploaded.is_some() {
            form method="post" action="/music-on-hold/delete" {
                (crate::html::csrf_field(csrf))
                button type="submit" { "Delete the upload" }
            }
        }
    }
}

/// How long attendant `name`'s recorded greeting is, if it has one.
fn recorded_seconds(data_dir: &std::path::Path, name: &str) -> Option<usize> {
    seconds_of(&recorded_path(data_dir, name))
}

/// How long the WAV at `path` is, if there is one.
fn seconds_of(path: &std::path::Path) -> Option<usize> {
    let bytes = std::fs::read(path).ok()?;
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

/// The WAV in form field `field`, as the phone's 8 kHz mono, at most `max_seconds`
/// long (`Err`: why not, for the page).
async fn uploaded_wav(
    form: &mut Multipart,
    field: &str,
    max_seconds: usize,
) -> Result<Vec<i16>, String> {
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(f)) if f.name() == Some(field) => match f.bytes().await {
                Ok(b) => file = Some(b),
                Err(e) => return Err(format!("The upload failed: {e}")),
            },
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(format!("The upload failed: {e}")),
        }
    }
    let Some(file) = file else {
        return Err("Choose a WAV file to upload.".into());
    };
    match wav::read_any_wav(&file) {
        Ok(s) if s.is_empty() => Err("That WAV file holds no sound.".into()),
        Ok(s) if s.len() > max_seconds * 8000 => Err(format!(
            "It may be {} minutes long at most.",
            max_seconds / 60
        )),
        Ok(s) => Ok(s),
        Err(e) => Err(format!(
            "That is not a WAV file the phones can play ({e}); save it as 16-bit PCM WAV."
        )),
    }
}

/// Keeps `samples` as a WAV at `path` (atomically).
async fn keep(path: std::path::PathBuf, samples: Vec<i16>) -> Result<(), String> {
    let written = tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        officebox_store::write_atomic(&path, &wav::write_wav(&samples), 0o644)
            .map_err(std::io::Error::other)
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("It could not be saved: {e}")),
        Err(e) => Err(format!("It could not be saved: {e}")),
    }
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
    let samples = match uploaded_wav(&mut form, "greeting", MAX_SECONDS).await {
        Ok(s) => s,
        Err(why) => return refused(&app, &me, &why).await,
    };
    match keep(recorded_path(&config.data_dir, &name), samples).await {
        Ok(()) => {
            info!(message = "web: attendant greeting uploaded", attendant = %name, user = %me.user);
            redirect("/routing?saved=1")
        }
        Err(why) => refused(&app, &me, &why).await,
    }
}

/// `POST /music-on-hold`: the file in field `music`, checked, converted and kept.
pub(crate) async fn upload_music(
    State(app): State<Shared>,
    me: Me,
    mut form: Multipart,
) -> Response {
    let config = app.config();
    let samples = match uploaded_wav(&mut form, "music", MAX_MUSIC_SECONDS).await {
        Ok(s) => s,
        Err(why) => return refused(&app, &me, &why).await,
    };
    match keep(music_on_hold_path(&config.data_dir), samples).await {
        Ok(()) => {
            info!(message = "web: music on hold uploaded", user = %me.user);
            redirect("/routing?saved=1")
        }
        Err(why) => refused(&app, &me, &why).await,
    }
}

/// `POST /music-on-hold/delete`: the upload goes; the setting's music plays again.
pub(crate) async fn delete_music(State(app): State<Shared>, me: Me) -> Response {
    let path = music_on_hold_path(&app.config().data_dir);
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
    info!(message = "web: music on hold upload deleted", user = %me.user);
    redirect("/routing?saved=1")
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
