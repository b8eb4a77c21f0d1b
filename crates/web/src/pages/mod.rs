//! One module per page (or group of pages sharing a form): each has the handlers its
//! routes name in [`crate::routes::admin`].

pub(crate) mod backup;
pub(crate) mod calls;
pub(crate) mod greetings;
pub(crate) mod history;
pub(crate) mod home;
pub(crate) mod lists;
pub(crate) mod login;
pub(crate) mod mail;
pub(crate) mod me;
pub(crate) mod settings;
pub(crate) mod sites;
pub(crate) mod users;
