//! jitd: the only privileged part of the JIT access system.
//!
//! One way through it: [`bus`] (who is calling; names checked into the types of [`names`])
//! → [`service`] (one lock, waits, the expiry timer) → [`grants`] (decisions, asking
//! [`policy`]) → [`store`] (state and audit record in one transaction) → side effects:
//! [`sudoers`] rules, [`sessions`] ended with their grant, the [`audit`] mirror. The README's
//! "Architecture" and "Project layout" say where everything else is.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod audit;
pub mod bus;
pub mod command_paths;
pub mod daemon;
pub mod directory;
pub mod error;
pub mod fatal;
pub mod faults;
pub mod files;
pub mod fleet;
pub mod grants;
pub mod groups;
pub mod hub;
pub mod instance;
pub mod model;
pub mod names;
pub mod notices;
pub mod notify;
pub mod notifyd;
pub mod outbox;
pub mod pam_ops;
pub mod pam_socket;
pub mod policy;
pub mod privileges;
pub mod seal;
pub mod service;
pub mod sessions;
pub mod static_rules;
pub mod store;
pub mod sudoers;
pub mod trail;
pub mod validator;
pub mod window;
