//! Secrets for guests: the operator gives a workload named secrets (`lamina run --secret
//! NAME=FILE`, or the control plane after attestation); the guest reads them through
//! `lamina:secrets/store` or, from a core module, the `lamina:secrets` imports.
//!
//! Values live only in memory, are wiped when dropped, and are never formatted: [`Secrets`]'
//! `Debug` shows names only. Asking for a secret that was not given is the WIT error
//! `not-found` (status 1 in the core ABI), never a trap.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use lamina_host_abi::{Status, call};
use wasmtime::Caller;
use zeroize::Zeroizing;

/// The longest secret name.
pub const MAX_NAME: usize = lamina_types::SecretName::MAX_LEN;

/// The set of secrets given to a workload.
#[derive(Default, Clone)]
pub struct Secrets {
    values: BTreeMap<String, Arc<Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values never reach a log.
        f.debug_struct("Secrets").field("names", &self.values.keys().collect::<Vec<_>>()).finish()
    }
}

/// A secret that cannot be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretsError {
    /// The name is not a secret name.
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The name was given twice.
    Duplicate(String),
}

impl std::fmt::Display for SecretsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Escaped: the name is whatever was typed, control characters included.
            SecretsError::InvalidName { name, reason } => {
                write!(f, "`{}` is not a secret name: {reason}", name.escape_debug())
            }
            SecretsError::Duplicate(name) => write!(f, "the secret `{name}` is given twice"),
        }
    }
}

impl std::error::Error for SecretsError {}

/// Checks a secret name: [`lamina_types::SecretName`]'s rule, the same everywhere.
///
/// # Errors
/// Why the name is not one.
pub fn check_name(name: &str) -> Result<(), String> {
    lamina_types::SecretName::check(name).map_err(|e| e.to_string())
}

impl Secrets {
    /// No secrets.
    pub fn new() -> Self {
        Secrets::default()
    }

    /// Adds a secret.
    ///
    /// # Errors
    /// [`SecretsError`] for a malformed or repeated name.
    pub fn insert(&mut self, name: &str, value: Zeroizing<Vec<u8>>) -> Result<(), SecretsError> {
        check_name(name).map_err(|reason| SecretsError::InvalidName { name: name.into(), reason })?;
        if self.values.contains_key(name) {
            return Err(SecretsError::Duplicate(name.into()));
        }
        self.values.insert(name.into(), Arc::new(value));
        Ok(())
    }

    /// The value of a secret.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.values.get(name).map(|v| v.as_slice())
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One instance's view of its secrets.
#[derive(Debug, Default, Clone)]
pub struct SecretsCtx {
    secrets: Arc<Secrets>,
}

impl SecretsCtx {
    /// An instance's view of these secrets.
    pub fn new(secrets: Arc<Secrets>) -> Self {
        SecretsCtx { secrets }
    }

    fn lookup(&self, name: &str) -> Result<&[u8], bindings::lamina::secrets::store::Error> {
        use bindings::lamina::secrets::store::Error;
        check_name(name).map_err(Error::InvalidName)?;
        self.secrets.get(name).ok_or(Error::NotFound)
    }
}

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "lamina:secrets/imports",
        imports: { default: trappable },
    });
}

pub use bindings::lamina::secrets::store::Error as WitError;

impl bindings::lamina::secrets::store::Host for SecretsCtx {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        Ok(self.lookup(&name).map(<[u8]>::to_vec))
    }

    fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.secrets.names().map(str::to_owned).collect())
    }
}

/// Adds `lamina:secrets/store` to a component linker; `get` finds each instance's context.
///
/// # Errors
/// When the linker already defines it.
pub fn add_to_component_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut SecretsCtx,
) -> wasmtime::Result<()> {
    bindings::lamina::secrets::store::add_to_linker::<T, wasmtime::component::HasSelf<SecretsCtx>>(linker, get)
}

/// The core-ABI module name.
pub const CORE_MODULE: &str = "lamina:secrets";

/// Adds the core-ABI functions to a module linker:
///
/// - `get(name, name_len, buf, cap, len_out) -> status`: the secret's bytes into `buf`, its
///   length into `*len_out`; `NOT_FOUND` when it was not given, `BUFFER_TOO_SMALL` (with the
///   length written) when `cap` is short.
/// - `names(buf, cap, len_out) -> status`: every name, each followed by a NUL byte.
///
/// # Errors
/// When the linker already defines them.
pub fn add_to_module_linker<T: 'static>(
    linker: &mut wasmtime::Linker<T>,
    get: fn(&mut T) -> &mut SecretsCtx,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        CORE_MODULE,
        "get",
        move |mut caller: Caller<'_, T>, name: u32, name_len: u32, buf: u32, cap: u32, len_out: u32| -> i32 {
            call(&mut caller, get, |mem, ctx| {
                let name = mem.str(name, name_len)?.to_owned();
                let value = ctx.lookup(&name).map_err(|e| match e {
                    WitError::NotFound => Status::NotFound,
                    WitError::InvalidName(_) => Status::InvalidArgument,
                })?;
                mem.output(buf, cap, len_out, value)
            })
        },
    )?;
    linker.func_wrap(
        CORE_MODULE,
        "names",
        move |mut caller: Caller<'_, T>, buf: u32, cap: u32, len_out: u32| -> i32 {
            call(&mut caller, get, |mem, ctx| {
                let mut all = Vec::new();
                for name in ctx.secrets.names() {
                    all.extend_from_slice(name.as_bytes());
                    all.push(0);
                }
                mem.output(buf, cap, len_out, &all)
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        let mut s = Secrets::new();
        s.insert("db-password", Zeroizing::new(b"hunter2".to_vec())).expect("valid");
        s
    }

    #[test]
    fn debug_shows_names_never_values() {
        let text = format!("{:?} {:?}", secrets(), SecretsCtx::new(Arc::new(secrets())));
        assert!(text.contains("db-password"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn names_are_checked() {
        let mut s = secrets();
        assert!(matches!(s.insert("a/b", Zeroizing::default()), Err(SecretsError::InvalidName { .. })));
        assert!(matches!(s.insert("", Zeroizing::default()), Err(SecretsError::InvalidName { .. })));
        assert!(matches!(s.insert(&"x".repeat(129), Zeroizing::default()), Err(SecretsError::InvalidName { .. })));
        // The manifest and the control plane refuse a leading dot; so does `--secret` (it was
        // the one place that took one).
        assert!(matches!(s.insert(".env", Zeroizing::default()), Err(SecretsError::InvalidName { .. })));
        let shown = s.insert("a\u{1b}[2Jb", Zeroizing::default()).expect_err("refused").to_string();
        assert!(shown.contains("`a\\u{1b}[2Jb` is not a secret name"), "{shown}");
        assert_eq!(s.insert("db-password", Zeroizing::default()), Err(SecretsError::Duplicate("db-password".into())));
    }

    struct Host {
        secrets: SecretsCtx,
    }

    fn run_module(wat: &str) -> i32 {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wat).expect("valid module");
        let mut linker = wasmtime::Linker::<Host>::new(&engine);
        add_to_module_linker(&mut linker, |h| &mut h.secrets).expect("links");
        let mut store = wasmtime::Store::new(&engine, Host { secrets: SecretsCtx::new(Arc::new(secrets())) });
        let instance = linker.instantiate(&mut store, &module).expect("instantiates");
        let run = instance.get_typed_func::<(), i32>(&mut store, "run").expect("run");
        run.call(&mut store, ()).expect("no trap")
    }

    const PRELUDE: &str = r#"
        (import "lamina:secrets" "get" (func $get (param i32 i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "db-passwordnope")
    "#;

    #[test]
    fn core_get_copies_the_value() {
        let wat = format!(
            r#"(module {PRELUDE}
                (func (export "run") (result i32)
                    (if (call $get (i32.const 0) (i32.const 11) (i32.const 100) (i32.const 16) (i32.const 200))
                        (then (return (i32.const -1))))
                    (i32.or
                        (i32.ne (i32.load (i32.const 200)) (i32.const 7))
                        (i32.ne (i32.load8_u (i32.const 106)) (i32.const 0x32)))))"#
        );
        assert_eq!(run_module(&wat), 0);
    }

    #[test]
    fn core_missing_secret_is_a_status_not_a_trap() {
        let wat = format!(
            r#"(module {PRELUDE}
                (func (export "run") (result i32)
                    (call $get (i32.const 11) (i32.const 4) (i32.const 100) (i32.const 16) (i32.const 200))))"#
        );
        assert_eq!(run_module(&wat), Status::NotFound.code());
    }

    #[test]
    fn core_short_buffer_and_bad_pointer() {
        let short = format!(
            r#"(module {PRELUDE}
                (func (export "run") (result i32)
                    (call $get (i32.const 0) (i32.const 11) (i32.const 100) (i32.const 3) (i32.const 200))))"#
        );
        assert_eq!(run_module(&short), Status::BufferTooSmall.code());
        let fault = format!(
            r#"(module {PRELUDE}
                (func (export "run") (result i32)
                    (call $get (i32.const 0) (i32.const 11) (i32.const 65530) (i32.const 16) (i32.const 200))))"#
        );
        assert_eq!(run_module(&fault), Status::Fault.code());
    }
}
