//! Local stores first; the control plane only on a pure local miss.

use std::sync::Arc;

use portcullis_identity::TenantStatus;

use crate::resolver::{Principal, Resolution, ResolveError, Resolving, TenantResolver};

/// Local resolvers in order, then a remote one.
///
/// The local stores are authoritative: the first that knows the principal
/// answers, active or not, and the remote resolver is asked only when none
/// does. A remote answer naming a tenant that a local store records as
/// inactive is inactive: the operator's kill switch wins over the control
/// plane.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use portcullis_identity::{BearerDigest, Tenant, TenantStatus};
/// use portcullis_tenant::{Chain, MemoryStore, Principal, Resolution, TenantResolver};
///
/// let local = MemoryStore::new();
/// let key = Principal::Bearer(BearerDigest::of_token("sk-1"));
/// local.insert(key.clone(), Tenant::new("acme", TenantStatus::Active));
/// let chain = Chain::new([local]);
/// assert!(matches!(chain.resolve(&key).await, Ok(Resolution::Active(_))));
/// # }
/// ```
#[derive(Clone)]
pub struct Chain {
    locals: Vec<Arc<dyn TenantResolver>>,
    remote: Option<Arc<dyn TenantResolver>>,
}

impl Chain {
    /// Local resolvers, asked in order.
    pub fn new<R: TenantResolver>(locals: impl IntoIterator<Item = R>) -> Self {
        Chain {
            locals: locals
                .into_iter()
                .map(|r| Arc::new(r) as Arc<dyn TenantResolver>)
                .collect(),
            remote: None,
        }
    }

    /// One more local resolver, asked after the others.
    #[must_use]
    pub fn with_local(mut self, local: impl TenantResolver) -> Self {
        self.locals.push(Arc::new(local));
        self
    }

    /// The resolver asked when no local one knows the principal.
    #[must_use]
    pub fn with_remote(mut self, remote: impl TenantResolver) -> Self {
        self.remote = Some(Arc::new(remote));
        self
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("locals", &self.locals.len())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl Chain {
    /// The remote's answer, overruled by a local kill switch.
    fn overrule(
        &self,
        answer: Result<Resolution, ResolveError>,
    ) -> Result<Resolution, ResolveError> {
        match answer? {
            Resolution::Active(tenant)
                if self.tenant_status(tenant.id()) == Some(TenantStatus::Inactive) =>
            {
                Ok(Resolution::Inactive(tenant))
            }
            other => Ok(other),
        }
    }

    /// The locals from `from` on, then the remote, waiting for each.
    async fn resolve_from(
        &self,
        from: usize,
        principal: &Principal,
    ) -> Result<Resolution, ResolveError> {
        for local in &self.locals[from..] {
            match local.resolve(principal).await? {
                Resolution::Unknown => continue,
                known => return Ok(known),
            }
        }
        match &self.remote {
            Some(remote) => self.overrule(remote.resolve(principal).await),
            None => Ok(Resolution::Unknown),
        }
    }
}

impl TenantResolver for Chain {
    /// The locals in order, then the remote; answered at once while every
    /// answer is at hand, waiting only from the first that is not.
    fn resolve<'a>(&'a self, principal: &'a Principal) -> Resolving<'a> {
        for (index, local) in self.locals.iter().enumerate() {
            match local.resolve(principal).now() {
                Ok(Ok(Resolution::Unknown)) => continue,
                Ok(known) => return Resolving::ready(known),
                Err(later) => {
                    return Resolving::later(async move {
                        match later.await? {
                            Resolution::Unknown => self.resolve_from(index + 1, principal).await,
                            known => Ok(known),
                        }
                    });
                }
            }
        }
        let Some(remote) = &self.remote else {
            return Resolving::ready(Ok(Resolution::Unknown));
        };
        match remote.resolve(principal).now() {
            Ok(answer) => Resolving::ready(self.overrule(answer)),
            Err(later) => Resolving::later(async move { self.overrule(later.await) }),
        }
    }

    fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        // Any local inactive record blocks; otherwise the first that knows.
        let statuses: Vec<TenantStatus> = self
            .locals
            .iter()
            .filter_map(|local| local.tenant_status(tenant_id))
            .collect();
        if statuses.contains(&TenantStatus::Inactive) {
            Some(TenantStatus::Inactive)
        } else {
            statuses.first().copied()
        }
    }

    fn cached_entries(&self) -> Option<usize> {
        self.remote
            .as_ref()
            .and_then(|remote| remote.cached_entries())
    }
}
