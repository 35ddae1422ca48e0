//! [`Code`]: Google's canonical status codes (`google.rpc.Code`). Error bodies name them
//! (`"status": "NOT_FOUND"`); a failed operation's `google.rpc.Status` numbers them
//! (`"code": 5`). Both forms parse into one enum; a name or number this client does not know is
//! kept as received ([`Unrecognized`]), never refused and never a panic.
//!
//! Serde: [`Code`]'s own `Serialize` writes the name (the error-body form); [`as_number`] writes
//! the number (the operation form). Deserializing accepts either form, in either place.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// `google.rpc.Code`. The default is UNKNOWN, what Google's libraries assume when a status
/// carries no code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Code {
    Ok,
    Cancelled,
    #[default]
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
    /// A code this client does not know, as the server sent it.
    Unrecognized(Unrecognized),
}

/// What the server sent for a code this client does not know.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unrecognized {
    Name(String),
    Number(i64),
}

/// Every known code with its number and name, in number order (Google's table).
const KNOWN: [(Code, i32, &str); 17] = [
    (Code::Ok, 0, "OK"),
    (Code::Cancelled, 1, "CANCELLED"),
    (Code::Unknown, 2, "UNKNOWN"),
    (Code::InvalidArgument, 3, "INVALID_ARGUMENT"),
    (Code::DeadlineExceeded, 4, "DEADLINE_EXCEEDED"),
    (Code::NotFound, 5, "NOT_FOUND"),
    (Code::AlreadyExists, 6, "ALREADY_EXISTS"),
    (Code::PermissionDenied, 7, "PERMISSION_DENIED"),
    (Code::ResourceExhausted, 8, "RESOURCE_EXHAUSTED"),
    (Code::FailedPrecondition, 9, "FAILED_PRECONDITION"),
    (Code::Aborted, 10, "ABORTED"),
    (Code::OutOfRange, 11, "OUT_OF_RANGE"),
    (Code::Unimplemented, 12, "UNIMPLEMENTED"),
    (Code::Internal, 13, "INTERNAL"),
    (Code::Unavailable, 14, "UNAVAILABLE"),
    (Code::DataLoss, 15, "DATA_LOSS"),
    (Code::Unauthenticated, 16, "UNAUTHENTICATED"),
];

impl Code {
    /// The code an error body names (`"NOT_FOUND"`).
    pub fn from_name(name: &str) -> Code {
        KNOWN
            .iter()
            .find(|(_, _, known)| *known == name)
            .map(|(code, _, _)| code.clone())
            .unwrap_or_else(|| Code::Unrecognized(Unrecognized::Name(name.to_string())))
    }

    /// The code an operation's error numbers (`5`).
    pub fn from_number(number: i64) -> Code {
        KNOWN
            .iter()
            .find(|(_, known, _)| i64::from(*known) == number)
            .map(|(code, _, _)| code.clone())
            .unwrap_or(Code::Unrecognized(Unrecognized::Number(number)))
    }

    /// A code in either wire form: a name, or a number; anything else is `None`.
    pub fn from_json(value: &Value) -> Option<Code> {
        match value {
            Value::String(name) => Some(Code::from_name(name)),
            Value::Number(number) => number.as_i64().map(Code::from_number),
            _ => None,
        }
    }

    fn known(&self) -> Option<&'static (Code, i32, &'static str)> {
        KNOWN.iter().find(|(code, _, _)| code == self)
    }

    /// Google's name (`NOT_FOUND`), or the unrecognised name as sent.
    pub fn name(&self) -> Option<&str> {
        match self {
            Code::Unrecognized(Unrecognized::Name(name)) => Some(name),
            Code::Unrecognized(Unrecognized::Number(_)) => None,
            known => known.known().map(|(_, _, name)| *name),
        }
    }

    /// Google's number (`5`), or the unrecognised number as sent.
    pub fn number(&self) -> Option<i64> {
        match self {
            Code::Unrecognized(Unrecognized::Number(number)) => Some(*number),
            Code::Unrecognized(Unrecognized::Name(_)) => None,
            known => known.known().map(|(_, number, _)| i64::from(*number)),
        }
    }

    /// The name form (for error bodies); an unrecognised number stays a number.
    fn to_name_json(&self) -> Value {
        match (self.name(), self.number()) {
            (Some(name), _) => Value::from(name),
            (None, number) => Value::from(number.unwrap_or_default()),
        }
    }

    /// The number form (for operations); an unrecognised name stays a name.
    fn to_number_json(&self) -> Value {
        match (self.number(), self.name()) {
            (Some(number), _) => Value::from(number),
            (None, name) => Value::from(name.unwrap_or_default()),
        }
    }
}

impl fmt::Display for Code {
    /// The name (`NOT_FOUND`); an unrecognised number as its digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.number()) {
            (Some(name), _) => f.write_str(name),
            (None, number) => write!(f, "{}", number.unwrap_or_default()),
        }
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_name_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Code::from_json(&value).ok_or_else(|| {
            serde::de::Error::custom(format!("a status code is a name or a number, not {value}"))
        })
    }
}

/// `#[serde(serialize_with = "as_number")]`: a code written as its number, as in a
/// `google.rpc.Status` (a failed operation's `error`).
pub fn as_number<S: Serializer>(code: &Code, serializer: S) -> Result<S::Ok, S::Error> {
    code.to_number_json().serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_known_code_parses_from_its_name_and_its_number() {
        for (code, number, name) in KNOWN {
            assert_eq!(Code::from_name(name), code);
            assert_eq!(Code::from_number(i64::from(number)), code);
            assert_eq!(
                (code.name(), code.number()),
                (Some(name), Some(i64::from(number)))
            );
            assert_eq!(code.to_string(), name);
        }
        assert_eq!(Code::from_name("UNAUTHENTICATED"), Code::Unauthenticated);
        assert_eq!(Code::from_number(9), Code::FailedPrecondition);
    }

    #[test]
    fn unknown_names_and_numbers_are_kept_as_sent() {
        let name = Code::from_name("NEW_STATUS");
        assert_eq!(name, Code::Unrecognized(Unrecognized::Name("NEW_STATUS".into())));
        assert_eq!((name.to_string(), name.number()), ("NEW_STATUS".into(), None));
        let number = Code::from_number(42);
        assert_eq!(number, Code::Unrecognized(Unrecognized::Number(42)));
        assert_eq!((number.to_string(), number.name()), ("42".into(), None));
        assert_eq!(
            Code::from_number(-1),
            Code::Unrecognized(Unrecognized::Number(-1))
        );
        assert_eq!(Code::from_json(&json!(true)), None);
        assert_eq!(Code::from_json(&json!(1.5)), None);
    }

    #[test]
    fn serde_writes_names_by_default_and_numbers_on_request() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Status {
            #[serde(serialize_with = "as_number")]
            code: Code,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Envelope {
            status: Code,
        }
        for (code, number, name) in KNOWN {
            let status = Status { code: code.clone() };
            assert_eq!(serde_json::to_value(&status).unwrap(), json!({ "code": number }));
            assert_eq!(
                serde_json::from_value::<Status>(json!({ "code": number })).unwrap(),
                status
            );
            let envelope = Envelope { status: code };
            assert_eq!(
                serde_json::to_value(&envelope).unwrap(),
                json!({ "status": name })
            );
            assert_eq!(
                serde_json::from_value::<Envelope>(json!({ "status": name })).unwrap(),
                envelope
            );
        }
        for unknown in [json!(99), json!("SOMETHING_NEW")] {
            let status: Status = serde_json::from_value(json!({ "code": unknown })).unwrap();
            assert_eq!(serde_json::to_value(&status).unwrap(), json!({ "code": unknown }));
            let envelope: Envelope = serde_json::from_value(json!({ "status": unknown })).unwrap();
            assert_eq!(
                serde_json::to_value(&envelope).unwrap(),
                json!({ "status": unknown })
            );
        }
        let refused = serde_json::from_value::<Envelope>(json!({ "status": [1] })).unwrap_err();
        assert!(refused.to_string().contains("name or a number"), "{refused}");
    }
}
