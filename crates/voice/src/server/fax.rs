//! The box's fax machines (`[[phone.fax]]`): reached by their extension from an office
//! phone (or a fax machine on an ATA), or as a DID's destination `fax:NAME`; the call is
//! answered by the box as a fax machine ([`crate::fax`]).

use officebox_config::dialplan::FaxLine;
use officebox_config::model::User;

use super::Request;
use crate::call::Callee;
use crate::fax::FaxSetup;

/// How the box answers for `line` (`None`: its user is gone meanwhile).
pub(super) fn setup_for(
    config: &officebox_config::Config,
    state: &super::State,
    line: &FaxLine,
) -> Option<FaxSetup> {
    let user = config.users.iter().find(|u| u.login == line.to)?;
    let domain = &config.network.domain;
    Some(FaxSetup {
        data_dir: config.data_dir.clone(),
        db: std::sync::Arc::clone(&state.db),
        targets: crate::mailbox::Targets::of(config, &user.login),
        login: user.login.clone(),
        name: user.name.clone(),
        address: format!("{}@{domain}", user.login),
        number: line.extension.clone().unwrap_or_else(|| line.name.clone()),
        ident: line.ident.clone(),
        host: format!("{}.{domain}", config.network.hostname),
        t38: officebox_config::model::T38Mode::On,
        tiff: line.tiff,
    })
}

/// `dialled` by `caller` if it is a fax machine's extension: the box answers as that
/// machine (`None`: it is none).
pub(super) fn dialled(
    req: &Request,
    caller: &User,
    dialled: &str,
) -> Option<Option<crate::sip::Message>> {
    let line = req
        .config
        .phone
        .dial_plan
        .faxes
        .iter()
        .find(|f| f.extension.as_deref() == Some(dialled))?;
    let Some(setup) = setup_for(req.config, req.state, line) else {
        return Some(Some(req.msg.response(404, "Not Found", req.tag.as_str())));
    };
    super::park::start(req, caller, dialled, Callee::Fax(Box::new(setup)));
    Some(None)
}
