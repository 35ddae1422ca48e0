//! `params!`: one struct per kind declares its parameters once; the parse from
//! `StepContext::params` and the `KindSchema` params are both generated from it, so they cannot
//! drift apart.
//!
//! ```ignore
//! params! {
//!     /// The parameters of `gcp.custom_role`.
//!     pub struct RoleParams {
//!         project: text => "project id",
//!         title: text_or("Custom Agent Gateway access role") => "title",
//!         permissions: strings => "permissions",
//!         adopt_existing: flag(true) => "use an existing one [default: true]",
//!     }
//! }
//! ```
//!
//! Each field's form says its type, whether it is required, and how it is read (with
//! `common`'s messages for missing, empty and wrong-typed values):
//!
//! | form | type | schema | read |
//! |---|---|---|---|
//! | `text` | `String` | required string | non-empty |
//! | `opt_text` | `Option<String>` | optional string | empty counts as absent |
//! | `text_or(D)` | `String` | optional string | empty or absent is `D` |
//! | `list` | `Vec<String>` | required list | non-empty strings |
//! | `strings` | `Vec<String>` | optional list | absent is empty |
//! | `flag(D)` | `bool` | optional bool | `true`/`false`, absent is `D` |
//! | `number` | `u64` | required int | a whole number |
//! | `object` | `Option<Value>` | optional object | as given (null is absent) |

macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $field:ident : $form:ident $( ( $default:expr ) )? => $help:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $( pub $field: params!(@type $form), )*
        }

        impl $name {
            /// Reads the step's parameters, in declaration order.
            pub fn parse(cx: &sluice_engine::StepContext) -> Result<Self, sluice_engine::StepError> {
                Ok($name {
                    $( $field: params!(@read cx, stringify!($field), $form $( ( $default ) )?), )*
                })
            }

            /// The schema's parameters, in declaration order.
            pub fn specs() -> Vec<sluice_engine::ParamSpec> {
                vec![ $( params!(@spec stringify!($field), $form, $help), )* ]
            }
        }
    };

    (@type text) => { String };
    (@type opt_text) => { Option<String> };
    (@type text_or) => { String };
    (@type list) => { Vec<String> };
    (@type strings) => { Vec<String> };
    (@type flag) => { bool };
    (@type number) => { u64 };
    (@type object) => { Option<serde_json::Value> };

    (@read $cx:ident, $n:expr, text) => { $crate::common::text($cx, $n)?.to_string() };
    (@read $cx:ident, $n:expr, opt_text) => { $crate::common::optional_text($cx, $n).map(str::to_string) };
    (@read $cx:ident, $n:expr, text_or($d:expr)) => {
        $crate::common::optional_text($cx, $n).unwrap_or($d).to_string()
    };
    (@read $cx:ident, $n:expr, list) => { $crate::common::strings($cx, $n)? };
    (@read $cx:ident, $n:expr, strings) => { $crate::common::strings($cx, $n)? };
    (@read $cx:ident, $n:expr, flag($d:expr)) => { $crate::common::flag($cx, $n, $d)? };
    (@read $cx:ident, $n:expr, number) => { $cx.u64_param($n, 0)? };
    (@read $cx:ident, $n:expr, object) => { $cx.params.get($n).filter(|v| !v.is_null()).cloned() };

    (@spec $n:expr, text, $help:expr) => {
        sluice_engine::ParamSpec::required($n, sluice_engine::ParamType::String, $help)
    };
    (@spec $n:expr, opt_text, $help:expr) => {
        sluice_engine::ParamSpec::optional($n, sluice_engine::ParamType::String, $help)
    };
    (@spec $n:expr, text_or, $help:expr) => {
        sluice_engine::ParamSpec::optional($n, sluice_engine::ParamType::String, $help)
    };
    (@spec $n:expr, list, $help:expr) => {
        sluice_engine::ParamSpec::required($n, sluice_engine::ParamType::List, $help)
    };
    (@spec $n:expr, strings, $help:expr) => {
        sluice_engine::ParamSpec::optional($n, sluice_engine::ParamType::List, $help)
    };
    (@spec $n:expr, flag, $help:expr) => {
        sluice_engine::ParamSpec::optional($n, sluice_engine::ParamType::Bool, $help)
    };
    (@spec $n:expr, number, $help:expr) => {
        sluice_engine::ParamSpec::required($n, sluice_engine::ParamType::Int, $help)
    };
    (@spec $n:expr, object, $help:expr) => {
        sluice_engine::ParamSpec::optional($n, sluice_engine::ParamType::Object, $help)
    };
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use sluice_engine::{ParamType, StepContext};

    params! {
        struct Sample {
            project: text => "project id",
            title: text_or("Untitled") => "title [default: Untitled]",
            note: opt_text => "a note",
            members: list => "members",
            extra: strings => "more",
            adopt: flag(true) => "adopt [default: true]",
            number: number => "a number",
            labels: object => "labels",
        }
    }

    fn context(params: Value) -> StepContext {
        StepContext {
            run_id: "run".into(),
            step_id: "s".into(),
            params: params.as_object().cloned().unwrap(),
            idempotency_key: "key".into(),
            attempt: 1,
        }
    }

    #[test]
    fn the_schema_is_the_struct() {
        let specs = Sample::specs();
        let shape: Vec<(&str, ParamType, bool)> = specs.iter().map(|s| (s.name, s.ty, s.required)).collect();
        assert_eq!(
            shape,
            [
                ("project", ParamType::String, true),
                ("title", ParamType::String, false),
                ("note", ParamType::String, false),
                ("members", ParamType::List, true),
                ("extra", ParamType::List, false),
                ("adopt", ParamType::Bool, false),
                ("number", ParamType::Int, true),
                ("labels", ParamType::Object, false),
            ]
        );
        assert_eq!(specs[1].description, "title [default: Untitled]");
    }

    #[test]
    fn parsing_reads_defaults_and_keeps_the_messages() {
        let sample = Sample::parse(&context(json!({
            "project": "p", "note": "", "members": ["a"], "number": "12", "labels": null
        })))
        .unwrap();
        assert_eq!(sample.project, "p");
        assert_eq!(sample.title, "Untitled");
        assert_eq!(sample.note, None, "empty counts as absent");
        assert_eq!(sample.members, ["a"]);
        assert!(sample.extra.is_empty());
        assert!(sample.adopt);
        assert_eq!(sample.number, 12);
        assert_eq!(sample.labels, None);

        let error = |params: Value| Sample::parse(&context(params)).unwrap_err().message().to_string();
        assert_eq!(
            error(json!({ "project": "  " })),
            "step `s`: parameter `project` is empty; give it a value"
        );
        assert_eq!(error(json!({})), "step `s`: parameter `project` must be a string");
        assert!(error(json!({ "project": "p", "members": [1] })).contains("list of non-empty strings"));
        assert!(error(json!({ "project": "p", "adopt": "yes" })).contains("`adopt` must be true or false"));
        assert!(error(json!({ "project": "p", "number": "x" })).contains("whole number"));
    }
}
