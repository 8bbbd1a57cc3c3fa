//! The one mapping from engine failures to JS errors. A failure reaches JS as a real `Error`
//! whose `code` is a property, with `phase` (time-outs) and `attempts` (requests) beside it;
//! `src-ts/errors.ts` (`fromNative`) picks the class from `code`. No text is parsed on either
//! side.
//!
//! Synchronous functions turn a [`Fail`] into a thrown error with [`Fail::throw`] (they take the
//! `Env`); asynchronous ones return an [`Outcome`], which rejects their promise with the error
//! object when it is converted on the JS thread. Events carry a [`Fail`] as a value: it becomes
//! the same error object.

use hypersock_core::Error as CoreError;
use napi::bindgen_prelude::*;
use napi::{sys, Env};

/// The result of binding code that can fail before it reaches JS.
pub type JsResult<T> = std::result::Result<T, Fail>;

/// A failure on its way to JS.
#[derive(Debug)]
pub struct Fail {
    /// The stable code (`ECONNREFUSED`, `ERR_INVALID_STATE`, ...).
    pub(crate) code: &'static str,
    /// For people.
    pub(crate) message: String,
    /// Which limit a time-out hit (`connect`, `headers`, `body`, `request`, `handshake`).
    pub(crate) phase: Option<&'static str>,
    /// Attempts made by a request that failed, retries included.
    pub(crate) attempts: Option<u32>,
}

impl From<CoreError> for Fail {
    fn from(e: CoreError) -> Fail {
        let phase = match &e {
            CoreError::Timeout(phase) => Some(*phase),
            _ => None,
        };
        Fail {
            code: e.code(),
            message: e.to_string(),
            phase,
            attempts: None,
        }
    }
}

impl Fail {
    /// A failure with a code of the binding's own.
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
            phase: None,
            attempts: None,
        }
    }

    /// `ERR_INVALID_STATE`: the call does not fit the object's state.
    pub(crate) fn invalid_state(message: impl Into<String>) -> Fail {
        Fail::new("ERR_INVALID_STATE", message)
    }

    /// `ERR_INVALID_ARG_VALUE`.
    pub(crate) fn invalid_arg(message: impl Into<String>) -> Fail {
        Fail::from(CoreError::InvalidArgument(message.into()))
    }

    /// `ERR_INVALID_ARG_VALUE` with `message` as it is (no "invalid argument:" in front).
    pub(crate) fn invalid_arg_message(message: impl Into<String>) -> Fail {
        Fail::new("ERR_INVALID_ARG_VALUE", message)
    }

    /// The same failure, saying how many attempts the request made.
    pub(crate) fn with_attempts(mut self, attempts: u32) -> Fail {
        self.attempts = Some(attempts);
        self
    }

    /// The JS error object.
    pub(crate) fn to_object<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let mut obj = env.create_error(Error::new(Status::GenericFailure, self.message.clone()))?;
        obj.set_named_property("code", self.code)?;
        if let Some(phase) = self.phase {
            obj.set_named_property("phase", phase)?;
        }
        if let Some(attempts) = self.attempts {
            obj.set_named_property("attempts", attempts)?;
        }
        Ok(obj)
    }

    /// The error to return from a synchronous function: JS receives the object of
    /// [`Fail::to_object`].
    pub(crate) fn throw(self, env: &Env) -> Error {
        match self.to_object(env) {
            Ok(obj) => Error::from(obj.to_unknown()),
            Err(e) => e,
        }
    }
}

impl ToNapiValue for Fail {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let env = Env::from_raw(env);
        Ok(val.to_object(&env)?.raw())
    }
}

/// `result.or_throw(env)`: any engine or binding failure as the error a synchronous function
/// returns.
pub(crate) trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> Result<T>;
}

impl<T, E: Into<Fail>> OrThrow<T> for std::result::Result<T, E> {
    fn or_throw(self, env: &Env) -> Result<T> {
        self.map_err(|e| e.into().throw(env))
    }
}

/// What an asynchronous function returns: its value, or a failure that rejects its promise with
/// the error object of [`Fail::to_object`]. (napi-rs would reject with a plain `Error` whose
/// `code` is a napi status; this conversion runs on the JS thread, where the object can be
/// made.) Such functions declare their TS type with `ts_return_type`.
pub struct Outcome<T>(pub JsResult<T>);

impl<T, E: Into<Fail>> From<std::result::Result<T, E>> for Outcome<T> {
    fn from(r: std::result::Result<T, E>) -> Self {
        Outcome(r.map_err(Into::into))
    }
}

impl<T: ToNapiValue> ToNapiValue for Outcome<T> {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        match val.0 {
            Ok(v) => T::to_napi_value(env, v),
            Err(fail) => Err(fail.throw(&Env::from_raw(env))),
        }
    }
}
