//! jitd: the only privileged part of the JIT access system.
//!
//! Where things are: policy decisions in [`policy`], the request/grant state machine in
//! [`grants`], sudoers files in [`sudoers`], the database and audit chain in [`store`] and
//! [`audit`], the D-Bus layer in [`bus`], the expiry timer in [`service`], sessions ended
//! with their grant in [`sessions`], the service manager's notifications in [`notify`].
#![forbid(unsafe_code)]

pub mod audit;
pub mod bus;
pub mod daemon;
pub mod directory;
pub mod error;
pub mod faults;
pub mod files;
pub mod grants;
pub mod instance;
pub mod model;
pub mod names;
pub mod notify;
pub mod policy;
pub mod privileges;
pub mod service;
pub mod sessions;
pub mod static_rules;
pub mod store;
pub mod sudoers;
pub mod validator;
pub mod window;
