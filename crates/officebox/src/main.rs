//! `officebox`: the command line, the supervisor, signals and reload.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod backup;
mod check;
mod init;
mod mail_cli;
mod memory;
mod notify;
mod passwords;
mod supervisor;
mod users;

/// The small-office server: router, DHCP, DNS, mail and phones in one program.
#[derive(Debug, Parser)]
#[command(name = "officebox", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every enabled service until SIGINT/SIGTERM; SIGHUP reloads the config.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print the settings derived from it.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write a complete, commented default config with a random admin password.
    Init {
        /// Where to write it (refuses to overwrite).
        #[arg(long, short, default_value = "officebox.toml")]
        config: PathBuf,
        /// The company's domain.
        #[arg(long, default_value = "example.com")]
        domain: String,
        /// The box's own name (default: this machine's host name).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// The DNS zone as served: every name, its records and where it came from.
    Dns {
        #[command(subcommand)]
        action: DnsAction,
    },
    /// The network side: the firewall ruleset officebox renders for the config.
    Net {
        #[command(subcommand)]
        action: NetAction,
    },
    /// The mail queue and the POP3 fetcher.
    Mail {
        #[command(subcommand)]
        action: MailAction,
    },
    /// The phone system.
    Phone {
        #[command(subcommand)]
        action: PhoneAction,
    },
    /// The box's fax machines ([[phone.fax]]).
    Fax {
        #[command(subcommand)]
        action: FaxAction,
    },
    /// The DHCP lease table.
    Dhcp {
        #[command(subcommand)]
        action: DhcpAction,
    },
    /// The WireGuard tunnels to the other sites.
    Vpn {
        #[command(subcommand)]
        action: VpnAction,
    },
    /// Write one archive of the box (config, state, mailboxes, keys) while it runs.
    Backup {
        #[arg(long, short)]
        config: PathBuf,
        /// Where to write it (default: officebox-HOST-DATE.tar.gz here).
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Bring a box back from an archive of `officebox backup`: all of it (stop officebox
    /// first), or only its settings or one mailbox. The archive is checked whole first;
    /// what it replaces is kept beside it.
    Restore {
        #[arg(long, short)]
        config: PathBuf,
        /// The archive.
        archive: PathBuf,
        /// Only the settings (the config file).
        #[arg(long, conflicts_with = "mailbox")]
        settings: bool,
        /// Only this user's mailbox.
        #[arg(long, value_name = "LOGIN")]
        mailbox: Option<String>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Add, change or remove users in the config file (comments and layout are kept).
    User {
        #[arg(long, short, global = true, default_value = "officebox.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: users::UserAction,
    },
}

/// An archive's passphrase (age encryption), never on the command line itself.
#[derive(Debug, clap::Args)]
struct PassphraseArgs {
    /// Read the passphrase from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_stdin")]
    passphrase_file: Option<PathBuf>,
    /// Read the passphrase from the first line of standard input.
    #[arg(long)]
    passphrase_stdin: bool,
}

impl PassphraseArgs {
    fn source(self) -> backup::Passphrase {
        match (self.passphrase_file, self.passphrase_stdin) {
            (Some(f), _) => backup::Passphrase::File(f),
            (None, true) => backup::Passphrase::Stdin,
            (None, false) => backup::Passphrase::None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum FaxAction {
    /// The fax calls the box answered, newest first: when, from whom, to whom, pages,
    /// and the T.30 outcome.
    Log {
        #[arg(long, short)]
        config: PathBuf,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum VpnAction {
    /// Print the box's public key, for the other sites' admins (made now if the box has
    /// none yet; the private key is never shown).
    Key {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The text to give the other site's admin: this office as a [[vpn.sites]] entry
    /// (name, public key, WAN endpoint, LAN subnet, box address, domain).
    Pairing {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Each site: where its box is, its last handshake, and the bytes carried.
    Status {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// A remote device's WireGuard configuration ([[vpn.peers]] NAME), to import into
    /// its WireGuard app (its key is made the first time; shown again each time).
    Device {
        /// The device's name.
        name: String,
        #[arg(long, short)]
        config: PathBuf,
        /// Replace its key with a new one (the old one stops working at once).
        #[arg(long)]
        new_key: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DnsAction {
    /// List the zone: built-in, static and DHCP names.
    Names {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum NetAction {
    /// Print the security mode, IP forwarding and the nftables ruleset for the config.
    Show {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Set up interfaces, forwarding and the firewall now (a running officebox does this
    /// itself); with --dry-run, only say what would change.
    Apply {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum MailAction {
    /// Messages waiting to go to other domains, with each recipient's state.
    Queue {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Tries every waiting message again now (the running server starts within a second).
    Flush {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The POP3 fetcher: `status` of each external mailbox, or fetch `now`.
    Fetch {
        #[command(subcommand)]
        action: FetchAction,
    },
}

#[derive(Debug, Subcommand)]
enum PhoneAction {
    /// Registered phones: user, extension, contact, where from, expiry, phone model.
    Registrations {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Calls in progress: who calls whom, ringing or talking, for how long.
    Calls {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The call log, newest first: start, who called whom, who answered, how long, and
    /// how it ended.
    Log {
        #[arg(long, short)]
        config: PathBuf,
        /// Only calls from this day on (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only calls an extension or login made, got or answered.
        #[arg(long)]
        extension: Option<String>,
        /// At most this many calls (0: all).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// As CSV, with a header row.
        #[arg(long)]
        csv: bool,
    },
    /// The lines to telephone providers: name, kind, server, state (registered, failing,
    /// disabled, ip) and its detail.
    Trunks {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The feature codes a phone dials, and what each does.
    Codes {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum FetchAction {
    /// Each external mailbox: last poll, last error, messages fetched.
    Status {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Polls every external mailbox now (the running server starts within a second).
    Now {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DhcpAction {
    /// Every lease: address, MAC, host name, expiry, reserved or dynamic.
    Leases {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    memory::configure_malloc();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Run { config } => supervisor::run(&config),
        Command::Check { config } => check::check(&config),
        Command::Init {
            config,
            domain,
            hostname,
        } => init::init(&config, hostname.as_deref(), &domain),
        Command::Backup {
            config,
            out,
            passphrase,
        } => backup::backup(&config, out.as_deref(), &passphrase.source()),
        Command::Restore {
            config,
            archive,
            settings,
            mailbox,
            passphrase,
        } => {
            let part = match (settings, mailbox) {
                (true, _) => backup::Part::Settings,
                (false, Some(login)) => backup::Part::Mailbox(login),
                (false, None) => backup::Part::All,
            };
            backup::restore(&config, &archive, &part, &passphrase.source())
        }
        Command::User { config, action } => users::user(&config, action),
        Command::Dns {
            action: DnsAction::Names { config },
        } => dns_names(&config),
        Command::Dhcp {
            action: DhcpAction::Leases { config },
        } => dhcp_leases(&config),
        Command::Net {
            action: NetAction::Show { config },
        } => net_show(&config),
        Command::Phone {
            action: PhoneAction::Registrations { config },
        } => phone_registrations(&config),
        Command::Phone {
            action: PhoneAction::Calls { config },
        } => phone_calls(&config),
        Command::Phone {
            action:
                PhoneAction::Log {
                    config,
                    since,
                    extension,
                    limit,
                    csv,
                },
        } => phone_log(&config, since.as_deref(), extension, limit, csv),
        Command::Phone {
            action: PhoneAction::Trunks { config },
        } => phone_trunks(&config),
        Command::Phone {
            action: PhoneAction::Codes { config },
        } => phone_codes(&config),
        Command::Fax {
            action: FaxAction::Log { config, limit },
        } => fax_log(&config, limit),
        Command::Vpn {
            action: VpnAction::Key { config },
        } => vpn_key(&config),
        Command::Vpn {
            action: VpnAction::Status { config },
        } => vpn_status(&config),
        Command::Vpn {
            action: VpnAction::Pairing { config },
        } => vpn_pairing(&config),
        Command::Vpn {
            action:
                VpnAction::Device {
                    name,
                    config,
                    new_key,
                },
        } => vpn_device(&config, &name, new_key),
        Command::Mail { action } => match action {
            MailAction::Queue { config } => mail_cli::queue(&config),
            MailAction::Flush { config } => mail_cli::flush(&config),
            MailAction::Fetch {
                action: FetchAction::Status { config },
            } => mail_cli::fetch_status(&config),
            MailAction::Fetch {
                action: FetchAction::Now { config },
            } => mail_cli::fetch_now(&config),
        },
        Command::Net {
            action: NetAction::Apply { config, dry_run },
        } => net_apply(&config, dry_run),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("officebox: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dns_names(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let (serial, entries) = officebox_dns::names(&config)?;
    println!("; zone {} serial {serial}", config.network.domain);
    println!(
        "{:<40} {:<6} {:>6}  {:<11} value",
        "name", "type", "ttl", "source"
    );
    for e in entries {
        println!(
            "{:<40} {:<6} {:>6}  {:<11} {}",
            e.name,
            e.rtype,
            e.ttl,
            e.source.name(),
            e.value
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The box's WireGuard key pair (made now if it has none).
fn box_key(
    config: &officebox_config::Config,
) -> anyhow::Result<officebox_secrets::wireguard::KeyPair> {
    officebox_secrets::wireguard::load_or_make(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "the box's WireGuard key in {}: {e}",
            config.data_dir.display()
        )
    })
}

fn vpn_key(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let pair = box_key(&config)?;
    println!("{}", pair.public_text());
    Ok(ExitCode::SUCCESS)
}

/// The box's WAN address now: the static one, else the last lease.
fn wan_now(config: &officebox_config::Config) -> Option<std::net::Ipv4Addr> {
    let leased = officebox_store::Db::open(&officebox_store::state_db(&config.data_dir))
        .ok()
        .and_then(|db| db.wan_address().ok().flatten());
    officebox_config::derive::wan_address(config, leased)
}

fn vpn_device(path: &std::path::Path, name: &str, new_key: bool) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let Some(peer) = config.vpn.peers.iter().find(|p| p.name == name) else {
        let known: Vec<&str> = config.vpn.peers.iter().map(|p| p.name.as_str()).collect();
        anyhow::bail!(
            "no [[vpn.peers]] is called {name} (there are: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let pair = box_key(&config)?;
    if new_key {
        if peer.public_key.is_some() {
            anyhow::bail!(
                "{name} made its own key (public_key is set): make a new one on the device and put its public key in the config"
            );
        }
        officebox_secrets::wireguard::new_device_key(&config.data_dir, name, &pair)?;
        eprintln!("{name} has a new key: the old configuration stops working within seconds");
    }
    let text = officebox_secrets::wireguard::client_config(&config, peer, &pair, wan_now(&config))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn vpn_pairing(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let pair = box_key(&config)?;
    let wan = wan_now(&config);
    print!(
        "{}",
        officebox_config::derive::pairing_text(&config, &pair.public_text(), wan)
    );
    if wan.is_none() {
        eprintln!(
            "(the WAN address is not known yet: the other site's box will wait for this one to call)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn fax_log(path: &std::path::Path, limit: u32) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let db = officebox_store::Db::open(&officebox_store::state_db(&config.data_dir))?;
    let faxes = db.faxes(limit)?;
    if faxes.is_empty() {
        println!("no fax yet");
    }
    for f in faxes {
        let from = if f.station.is_empty() {
            f.caller.clone()
        } else {
            format!("{} ({})", f.station, f.caller)
        };
        let pages = if f.complete == f.pages {
            format!("{} page(s)", f.pages)
        } else {
            format!("{} page(s), {} whole", f.pages, f.complete)
        };
        let code = f.code.map_or_else(|| "-".to_string(), |c| c.to_string());
        let way = if f.outgoing { "sent" } else { "received" };
        println!(
            "{}  {way}  {from} -> {} ({}): {pages}, {}s, T.30 {code} {}",
            officebox_store::date::datetime(f.at),
            f.number,
            f.login,
            f.seconds,
            f.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn vpn_status(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    if !config.vpn.enabled {
        println!("the tunnels are off (vpn.enabled = false)");
        return Ok(ExitCode::SUCCESS);
    }
    let db = officebox_store::Db::open(&officebox_store::state_db(&config.data_dir))?;
    let rows = db.site_statuses()?;
    let now = officebox_store::unix_now();
    if config.vpn.sites.is_empty() {
        println!("no site is set up ([[vpn.sites]])");
    }
    for site in &config.vpn.sites {
        let row = rows.iter().find(|r| r.site == site.name);
        let state = match (site.enabled, row.and_then(|r| r.handshake_at)) {
            (false, _) => "off".to_string(),
            (true, None) => "no handshake yet".to_string(),
            (true, Some(at)) if now - at < 180 => {
                format!("up, handshake {}s ago", (now - at).max(0))
            }
            (true, Some(at)) => format!("quiet, last handshake {}s ago", (now - at).max(0)),
        };
        let endpoint = row
            .and_then(|r| r.endpoint.clone())
            .or_else(|| site.endpoint.as_ref().map(|(h, p)| format!("{h}:{p}")))
            .unwrap_or_else(|| "-".into());
        let (sent, received) = row.map_or((0, 0), |r| (r.sent, r.received));
        let nets: Vec<String> = site.subnets.iter().map(ToString::to_string).collect();
        let services = row
            .and_then(|r| r.services.clone())
            .map(|s| format!("; {s}"))
            .unwrap_or_default();
        println!(
            "{:<16} {:<24} {:<34} sent {sent} B, received {received} B  ({}{services})",
            site.name,
            endpoint,
            state,
            nets.join(", ")
        );
    }
    let today = officebox_config::dialplan::LocalTime::now(config.phone.timezone.as_deref()).date;
    for p in &config.vpn.peers {
        let row = rows.iter().find(|r| r.site == p.name);
        let state = match (p.active(today), row.and_then(|r| r.handshake_at)) {
            (false, _) if !p.enabled => "off".to_string(),
            (false, _) => "expired".to_string(),
            (true, None) => "never connected".to_string(),
            (true, Some(at)) if now - at < 180 => {
                format!("up, handshake {}s ago", (now - at).max(0))
            }
            (true, Some(at)) => format!("away, last handshake {}s ago", (now - at).max(0)),
        };
        let endpoint = row
            .and_then(|r| r.endpoint.clone())
            .unwrap_or_else(|| "-".into());
        let (sent, received) = row.map_or((0, 0), |r| (r.sent, r.received));
        println!(
            "{:<16} {:<24} {:<34} sent {sent} B, received {received} B  (device of {}, {})",
            p.name, endpoint, state, p.user, p.address
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn phone_calls(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let db = officebox_store::Db::open(&officebox_store::state_db(&config.data_dir))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let calls = db.calls()?;
    if calls.is_empty() {
        println!("no call in progress");
    }
    for c in calls {
        let since = c.answered_at.unwrap_or(c.started_at);
        println!(
            "{} -> {}: {} for {}s",
            c.caller,
            c.callee,
            c.state,
            (now - since).max(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn phone_log(
    path: &std::path::Path,
    since: Option<&str>,
    extension: Option<String>,
    limit: u32,
    csv: bool,
) -> anyhow::Result<ExitCode> {
    use officebox_store::date::{datetime, parse_day};
    let since = match since {
        Some(day) => Some(
            parse_day(day)
                .ok_or_else(|| anyhow::anyhow!("--since {day:?}: write a day as YYYY-MM-DD"))?,
        ),
        None => None,
    };
    let config = officebox_config::load(path)?;
    let db = officebox_store::Db::open(&officebox_store::state_db(&config.data_dir))?;
    let calls = db.call_log(&officebox_store::CallQuery {
        since,
        party: extension,
        limit,
        ..Default::default()
    })?;
    if csv {
        print!("{}", officebox_store::call_log_csv(&calls));
        return Ok(ExitCode::SUCCESS);
    }
    if calls.is_empty() {
        println!("no call in the log");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<19}  {:<28} {:<10} {:<12} {:>8}  disposition",
        "start (UTC)", "from", "to", "answered by", "duration"
    );
    for c in calls {
        let from = if c.caller_name.is_empty() || c.caller_name == c.caller {
            c.caller.clone()
        } else {
            format!("{} ({})", c.caller, c.caller_name)
        };
        let answered_by = match (&c.answered_by, c.answered_at, c.disposition) {
            (Some(login), _, _) => login.clone(),
            (None, Some(_), Some(officebox_store::Disposition::Menu)) => "(menu)".into(),
            (None, Some(_), Some(officebox_store::Disposition::Attendant)) => "(attendant)".into(),
            (None, Some(_), Some(officebox_store::Disposition::Feature)) => "(the box)".into(),
            (None, Some(_), _) if c.direction == officebox_store::Direction::Out => {
                "(the number)".into()
            }
            (None, Some(_), _) => "(voicemail)".into(),
            (None, None, _) => "-".into(),
        };
        let duration = c
            .talk_secs()
            .map(|s| format!("{}:{:02}", s / 60, s % 60))
            .unwrap_or_else(|| "-".into());
        let trunk = c
            .trunk
            .map(|t| format!(" ({} via {t})", c.direction.as_str()))
            .unwrap_or_default();
        println!(
            "{:<19}  {:<28} {:<10} {:<12} {:>8}  {}{trunk}",
            datetime(c.started_at),
            from,
            c.callee,
            answered_by,
            duration,
            c.disposition
                .map_or("in-progress", officebox_store::Disposition::as_str)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `officebox phone codes`: what a phone can dial besides extensions.
fn phone_codes(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    for (code, what) in officebox_config::derive::feature_codes(&config) {
        println!("{code:<18} {what}");
    }
    Ok(ExitCode::SUCCESS)
}

fn phone_trunks(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use officebox_store::TrunkState;
    let config = officebox_config::load(path)?;
    if config.phone.trunks.is_empty() {
        println!("no trunk is configured");
        return Ok(ExitCode::SUCCESS);
    }
    let db = officebox_store::Db::open(&officebox_store::state_db(&config.data_dir))?;
    let rows = db.trunk_statuses()?;
    let now = officebox_store::unix_now();
    let within = |at: Option<i64>| at.map_or(String::new(), |t| format!("{}s", (t - now).max(0)));
    for t in &config.phone.trunks {
        let row = rows.iter().find(|r| r.name == t.name);
        let (state, detail) = match row {
            _ if !config.phone.enabled => ("disabled", "the phone system is off".to_string()),
            _ if !t.enabled => ("disabled", "enabled = false".to_string()),
            None => (
                "unknown",
                "no state yet (officebox is not running, or has not read this config)".into(),
            ),
            Some(r) => (
                r.state.as_str(),
                match r.state {
                    TrunkState::Registered => format!(
                        "as {} for {} more (refresh in {})",
                        r.detail,
                        within(r.registered_until),
                        within(r.next_try_at)
                    ),
                    TrunkState::Failing => format!(
                        "{}{}; next try in {}",
                        r.last_code.map_or(String::new(), |c| format!("{c} ")),
                        r.last_reason.as_deref().unwrap_or("failed"),
                        within(r.next_try_at)
                    ),
                    TrunkState::Ip => format!("({})", r.detail),
                    _ => r.detail.clone(),
                },
            ),
        };
        println!(
            "{:<16} {:<8} {:<28} {:<11} {detail}",
            t.name,
            t.kind.name(),
            t.server,
            state
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn phone_registrations(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let db = officebox_store::Db::open(&officebox_store::state_db(&config.data_dir))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let bindings = db.bindings(now)?;
    if bindings.is_empty() {
        println!("no phone is registered");
    }
    for b in bindings {
        let ext = config
            .users
            .iter()
            .find(|u| u.login == b.login)
            .and_then(|u| u.extension.clone())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<12} {:<6} {} from {} ({}), expires in {}s{}",
            b.login,
            ext,
            b.contact,
            b.source,
            b.transport,
            b.expires_at - now,
            if b.user_agent.is_empty() {
                String::new()
            } else {
                format!(", {}", b.user_agent)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn net_show(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let mode = config.security.mode;
    println!("# security mode: {}", mode.name());
    println!(
        "# ip forwarding: {}",
        if officebox_net::firewall::ip_forward(mode) {
            "on"
        } else {
            "off"
        }
    );
    match officebox_net::firewall::render(&config) {
        Ok(text) => print!("{text}"),
        // A config that does not manage the host (the demo) may not name interfaces.
        Err(e) if !config.network.manage => println!("# no ruleset: {e}"),
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

fn net_apply(path: &std::path::Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if dry_run {
            print!("{}", officebox_net::manage::dry_run(&config).await?);
        } else {
            officebox_net::manage::apply(&config).await?;
            println!("applied: security mode {}", config.security.mode.name());
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn dhcp_leases(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = officebox_config::load(path)?;
    let leases = officebox_dhcp::leases(&config)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    println!(
        "{:<15} {:<17} {:<20} {:<10} {:<9} expires",
        "address", "mac", "hostname", "state", "kind"
    );
    for l in leases {
        let left = l.expires_at - now;
        let expires = if left > 0 {
            format!(
                "in {}",
                officebox_config::values::format_duration(std::time::Duration::from_secs(
                    left as u64
                ))
            )
        } else {
            "expired".into()
        };
        println!(
            "{:<15} {:<17} {:<20} {:<10} {:<9} {expires}",
            l.address,
            l.mac,
            l.hostname.as_deref().unwrap_or("-"),
            l.state.as_str(),
            if l.reserved { "reserved" } else { "dynamic" },
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Readable logs on stderr by default (RUST_LOG filters, default info); JSON with a flag.
/// Warnings and errors are also kept for the admin Home page.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(RecentProblems);
    match format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json()).init(),
    }
}

/// Hands warnings and errors to the admin pages' list of recent problems.
struct RecentProblems;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RecentProblems {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARN",
            _ => return,
        };
        let mut text = Fields(String::new());
        event.record(&mut text);
        officebox_web::recent::push(level, text.0);
    }
}

/// An event's message, then its other fields as `name=value`.
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            // A message given as a field arrives quoted.
            if self.0.starts_with('"') && self.0.ends_with('"') && self.0.len() >= 2 {
                self.0 = self.0[1..self.0.len() - 1].to_string();
            }
            self.0.push_str(&rest);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = format!("{value}{}", self.0);
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}
