//! `audit`: the in-place type swap the design forbids, looked for read-only (identity, opener, stored hash, then the store's own log).

use super::*;

/// One finding of `audit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub what: String,
}

/// Looks for the in-place type swap the design forbids. Read-only.
pub fn audit(dir: &Path, registry: &Registry) -> Result<Vec<Finding>, MigrateError> {
    let f = store::audit_facts(dir)?;
    let mut out = Vec::new();
    let mut say = |what: String| out.push(Finding { what });
    if f.state != f.log {
        say(format!("state.db says ({}) but log.db says ({})", f.state, f.log));
    }
    match &f.created_as {
        Some((ty, schema)) if (ty, *schema) != (&f.state.store_type, f.state.schema_version) => say(format!(
            "created as `{ty}` schema {schema}, now `{}` schema {}: the type was changed in place",
            f.state.store_type, f.state.schema_version
        )),
        Some(_) => {}
        None => say("log.db has no `created_as` record".into()),
    }
    match registry.opener(&f.state.store_type) {
        Ok(o) if o.schema_version() != f.state.schema_version => say(format!(
            "no opener supports `{}` schema {} (the registered one has schema {})",
            f.state.store_type,
            f.state.schema_version,
            o.schema_version()
        )),
        Ok(_) => {}
        Err(e) => say(e.to_string()),
    }
    if !f.hash_matches_type {
        say(format!("the stored state hash was not computed for `{}` schema {}", f.state.store_type, f.state.schema_version));
    }
    // The contents too: a store whose identity is in order must also replay to what it stores.
    if out.is_empty() {
        if let Err(e) = crate::deep::verify_deep(dir, registry) {
            out.push(Finding { what: format!("deep verification failed: {e}") });
        }
    }
    Ok(out)
}
