//! The step kinds every command sees: the built-ins (`core.*`, `local.*`), the `gcp.*` kinds,
//! and those an embedding program adds ([`crate::Sluice::with_kinds`]).

use std::sync::Arc;

use sluice_engine::Registry;
use sluice_gcp::ClientOptions;
use sluice_steps::Cloud;

/// Adds kinds to a registry; given the cloud the `gcp.*` kinds call, for kinds that call it too.
type Register = dyn Fn(&mut Registry, &Cloud) + Send + Sync;

/// How to build the registry of a command.
#[derive(Clone, Default)]
pub(crate) struct Kinds {
    extra: Vec<Arc<Register>>,
}

impl Kinds {
    /// Adds an embedder's registration, applied after the built-in kinds (and earlier ones).
    pub fn add(&mut self, register: impl Fn(&mut Registry, &Cloud) + Send + Sync + 'static) {
        self.extra.push(Arc::new(register));
    }

    /// Every kind, the `gcp.*` ones calling `cloud`.
    pub fn registry(&self, cloud: Cloud) -> Registry {
        let mut registry = Registry::with_builtins();
        sluice_steps::register(&mut registry, cloud.clone());
        for register in &self.extra {
            register(&mut registry, &cloud);
        }
        registry
    }

    /// The registry for commands that never call a kind (validate, fleet plan): the client is
    /// never built.
    pub fn offline_registry(&self) -> Registry {
        self.registry(Cloud::new(ClientOptions::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_kinds_sit_next_to_the_built_in_ones_online_and_offline() {
        let mut kinds = Kinds::default();
        kinds.add(|registry, _| {
            registry.register("acme.noop", sluice_engine::builtin::Noop);
        });
        for registry in [
            kinds.offline_registry(),
            kinds.registry(Cloud::new(ClientOptions::default())),
        ] {
            let names: Vec<&str> = registry.names().collect();
            for name in ["acme.noop", "core.noop", "local.file", "gcp.services"] {
                assert!(names.contains(&name), "{name} missing from {names:?}");
            }
        }
        let plain = Kinds::default().offline_registry();
        assert!(plain.get("acme.noop").is_none());
    }
}
