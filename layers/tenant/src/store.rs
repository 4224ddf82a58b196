//! Local tenant stores: in memory, and a JSON file that reloads itself.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use portcullis_identity::watch::{DEFAULT_SETTLE, FileWatcher};
use portcullis_identity::{BearerDigest, Quota, Tenant, TenantStatus};
use serde::Deserialize;

use crate::resolver::{Principal, Resolution, Resolving, TenantResolver};

/// What a local store holds.
#[derive(Debug, Default, Clone)]
struct Records {
    by_principal: HashMap<Principal, Tenant>,
    tenants: HashMap<Arc<str>, TenantStatus>,
}

impl Records {
    fn resolve(&self, principal: &Principal) -> Resolution {
        match self.by_principal.get(principal) {
            None => Resolution::Unknown,
            Some(tenant) => match self.tenants.get(tenant.id()) {
                // The tenant's own switch overrides the key's.
                Some(TenantStatus::Inactive) => Resolution::Inactive(tenant.clone()),
                _ => Resolution::of(tenant.clone()),
            },
        }
    }
}

/// Principals and tenants held in memory; the local store for tests, and
/// for applications that load their own records.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    records: Arc<RwLock<Arc<Records>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Records `principal` as belonging to `tenant` (replacing any record).
    pub fn insert(&self, principal: Principal, tenant: Tenant) {
        self.update(|records| {
            records.by_principal.insert(principal, tenant);
        });
    }

    /// Forgets `principal`.
    pub fn remove(&self, principal: &Principal) {
        self.update(|records| {
            records.by_principal.remove(principal);
        });
    }

    /// Sets a tenant's own status: [`TenantStatus::Inactive`] blocks every
    /// key of the tenant, here and through a [`Chain`](crate::Chain)'s
    /// remote resolver (the operator's kill switch).
    pub fn set_tenant_status(&self, tenant_id: &str, status: TenantStatus) {
        self.update(|records| {
            records.tenants.insert(tenant_id.into(), status);
        });
    }

    /// A store holding the records of a tenants-file text (the
    /// [`FileStore`] format); `label` names the source in errors.
    pub fn from_tenants_json(label: &str, text: &str) -> Result<Self, TenantsFileError> {
        let store = MemoryStore::new();
        store.replace(parse_records(Path::new(label), text)?);
        Ok(store)
    }

    /// How many principals are recorded.
    pub fn len(&self) -> usize {
        self.snapshot().by_principal.len()
    }

    /// Whether no principal is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, principal: &Principal) -> Resolution {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .resolve(principal)
    }

    fn snapshot(&self) -> Arc<Records> {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut Records)) {
        let mut guard = self.records.write().unwrap_or_else(PoisonError::into_inner);
        change(Arc::make_mut(&mut guard));
    }

    fn replace(&self, records: Records) {
        *self.records.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(records);
    }
}

impl TenantResolver for MemoryStore {
    fn resolve<'a>(&'a self, principal: &'a Principal) -> Resolving<'a> {
        Resolving::ready(Ok(self.lookup(principal)))
    }

    fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        // Only a tenant's own record switches it off everywhere: an inactive
        // key is that key's business, not its tenant's.
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .tenants
            .get(tenant_id)
            .copied()
    }
}

/// The `TENANTS_FILE` format: the control plane's resolve answer per key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    #[serde(default)]
    keys: Vec<KeyRecord>,
    #[serde(default)]
    tenants: Vec<TenantRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    sha256: Option<String>,
    principal: Option<String>,
    cn: Option<String>,
    spiffe_id: Option<String>,
    fingerprint_sha256: Option<String>,
    tenant_id: String,
    consumer: Option<String>,
    #[serde(default = "active_by_default")]
    active: bool,
    rate_per_min: Option<u32>,
    burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantRecord {
    tenant_id: String,
    active: bool,
}

fn active_by_default() -> bool {
    true
}

/// Why a tenants file was refused. The last good records stay in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantsFileError {
    path: PathBuf,
    problem: String,
}

impl TenantsFileError {
    fn new(path: &Path, problem: impl Into<String>) -> Self {
        TenantsFileError {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for TenantsFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenants file {}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for TenantsFileError {}

/// What was wrong with the JSON, in words of our own: serde's messages
/// quote the offending value or name, and a key pasted into the wrong place
/// must not reach a log.
fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("at line {} column {}", error.line(), error.column());
    match error.classify() {
        Category::Io | Category::Syntax | Category::Eof => format!("not valid JSON {at}"),
        Category::Data => {
            let message = error.to_string();
            if message.starts_with("missing field `") {
                // The name is one of ours.
                message
            } else if message.starts_with("unknown field") {
                format!(
                    "an unknown field {at}; the fields are keys, tenants, sha256, principal, cn, spiffe_id, fingerprint_sha256, tenant_id, consumer, active, rate_per_min and burst"
                )
            } else {
                format!(
                    "a value of the wrong type {at}: active is true or false, rate_per_min and burst are whole numbers, the others are strings"
                )
            }
        }
    }
}

/// The one principal a key record names.
fn key_principal(key: &KeyRecord) -> Result<Principal, String> {
    let given = [
        key.sha256.as_deref(),
        key.principal.as_deref(),
        key.cn.as_deref(),
        key.spiffe_id.as_deref(),
        key.fingerprint_sha256.as_deref(),
    ];
    if given.iter().flatten().count() != 1 {
        return Err("give exactly one of sha256 (a bearer key's digest), principal (a certificate's SPIFFE ID, CN or fingerprint, told apart by their form), cn, spiffe_id or fingerprint_sha256".into());
    }
    let nonempty = |name: &str, value: &str| {
        let value = value.trim();
        if value.is_empty() {
            Err(format!("{name} is empty"))
        } else {
            Ok(value.to_owned())
        }
    };
    if let Some(hex) = &key.sha256 {
        return BearerDigest::from_hex(hex)
            .map(Principal::Bearer)
            .map_err(|_| {
                "sha256 must be the 64 hex digits of the key's SHA-256 (never the key itself)"
                    .into()
            });
    }
    if let Some(name) = &key.principal {
        return Principal::certificate_from_text(&nonempty("principal", name)?)
            .map_err(|e| format!("principal: {e}"));
    }
    if let Some(name) = &key.cn {
        return Ok(Principal::CommonName(nonempty("cn", name)?.into()));
    }
    if let Some(id) = &key.spiffe_id {
        return Principal::spiffe_id_from_text(&nonempty("spiffe_id", id)?)
            .map_err(|e| format!("spiffe_id {e}"));
    }
    let hex = nonempty(
        "fingerprint_sha256",
        key.fingerprint_sha256.as_deref().unwrap_or(""),
    )?;
    Principal::fingerprint_from_text(&hex)
        .ok_or_else(|| "fingerprint_sha256 must be 64 hex digits".into())
}

/// A plan's quota as the tenants file and the control plane give it:
/// neither field (no plan of its own), or both, a valid [`Quota`]. Anything
/// else is refused in both places alike, never silently read as no limit.
pub(crate) fn plan_quota(
    rate_per_min: Option<u32>,
    burst: Option<u32>,
) -> Result<Option<Quota>, String> {
    match (rate_per_min, burst) {
        (None, None) => Ok(None),
        (Some(rate_per_min), Some(burst)) => Quota::per_minute(rate_per_min, burst)
            .map(Some)
            .map_err(|e| format!("rate_per_min and burst: {e}")),
        _ => Err("give rate_per_min and burst together, or neither".to_owned()),
    }
}

/// Reads a tenants file's text into records.
fn parse_records(path: &Path, text: &str) -> Result<Records, TenantsFileError> {
    let file: TenantsFile = serde_json::from_str(text).map_err(|e| {
        TenantsFileError::new(
            path,
            format!(
                "{}; expected {{\"keys\": [{{\"sha256\", \"principal\", \"cn\", \"spiffe_id\" or \"fingerprint_sha256\", \"tenant_id\", \"consumer\", \"active\", \"rate_per_min\", \"burst\"}}]}}",
                describe_json_error(&e)
            ),
        )
    })?;
    let mut records = Records::default();
    let mut seen: HashMap<Principal, usize> = HashMap::new();
    for (index, key) in file.keys.into_iter().enumerate() {
        let entry =
            |problem: String| TenantsFileError::new(path, format!("keys[{index}]: {problem}"));
        let principal = key_principal(&key).map_err(entry)?;
        if key.tenant_id.trim().is_empty() {
            return Err(entry("tenant_id is empty".into()));
        }
        let quota = plan_quota(key.rate_per_min, key.burst).map_err(entry)?;
        if let Some(first) = seen.insert(principal.clone(), index) {
            return Err(entry(format!("the same key as keys[{first}]")));
        }
        let status = if key.active {
            TenantStatus::Active
        } else {
            TenantStatus::Inactive
        };
        let mut tenant = Tenant::new(key.tenant_id.trim(), status);
        if let Some(consumer) = key.consumer.filter(|c| !c.is_empty()) {
            tenant = tenant.with_caller(consumer);
        }
        if let Some(quota) = quota {
            tenant = tenant.with_quota(quota);
        }
        records.by_principal.insert(principal, tenant);
    }
    for (index, record) in file.tenants.into_iter().enumerate() {
        if record.tenant_id.trim().is_empty() {
            return Err(TenantsFileError::new(
                path,
                format!("tenants[{index}]: tenant_id is empty"),
            ));
        }
        let status = if record.active {
            TenantStatus::Active
        } else {
            TenantStatus::Inactive
        };
        records
            .tenants
            .insert(record.tenant_id.trim().into(), status);
    }
    Ok(records)
}

/// A [`MemoryStore`] loaded from a JSON file (`TENANTS_FILE`):
///
/// ```json
/// {"keys": [
///   {"sha256": "<hex SHA-256 of the API key>", "tenant_id": "acme", "consumer": "billing",
///    "active": true, "rate_per_min": 600, "burst": 20},
///   {"principal": "spiffe://example.org/ns/prod/sa/api", "tenant_id": "acme"}
///  ],
///  "tenants": [{"tenant_id": "globex", "active": false}]}
/// ```
///
/// `keys` hold the control plane's resolve answer per key: a bearer key by
/// its SHA-256 (the file never holds a key), a certificate by the
/// principal the layer reads from it. `tenants` switch whole tenants off.
/// Unknown fields, duplicate keys and half quotas are errors naming the
/// entry. [`reload`](Self::reload) (or [`watch`](Self::watch)) swaps in a
/// new file whole; a bad one keeps the last good records.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    store: MemoryStore,
    /// Successful loads, the first included; shared by every clone.
    loads: Arc<std::sync::atomic::AtomicU64>,
    /// The watcher [`watched`](Self::watched) started, stopped with the
    /// last clone.
    watcher: Option<Arc<FileWatcher>>,
}

impl FileStore {
    /// Loads `path`.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, TenantsFileError> {
        let store = FileStore {
            path: path.into(),
            store: MemoryStore::new(),
            loads: Arc::default(),
            watcher: None,
        };
        store.reload()?;
        Ok(store)
    }

    /// Reads the file again; on any error the records in force stay.
    /// Returns how many keys the new file holds.
    pub fn reload(&self) -> Result<usize, TenantsFileError> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| TenantsFileError::new(&self.path, format!("cannot read it: {e}")))?;
        let records = parse_records(&self.path, &text)?;
        let count = records.by_principal.len();
        self.store.replace(records);
        self.loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(count)
    }

    /// How many times the file has been read and taken (the first load
    /// included); a refused file does not count.
    pub fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This store, reloading itself whenever its file changes for as long
    /// as it (or a clone) lives: [`watch`](Self::watch) with the watcher
    /// held inside. A refused file is logged (feature `tracing`) and the
    /// last good records stay. `portcullis::from_env` loads
    /// `TENANTS_FILE` this way.
    pub fn watched(mut self) -> Result<Self, TenantsFileError> {
        let watcher = self.watch(|_| {})?;
        self.watcher = Some(Arc::new(watcher));
        Ok(self)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads whenever the file changes (its directory is watched, so a
    /// Kubernetes `..data` swap is seen), until the returned watcher is
    /// dropped. A bad file is reported through `on_error` and the last good
    /// records stay.
    pub fn watch(
        &self,
        on_error: impl Fn(TenantsFileError) + Send + 'static,
    ) -> Result<FileWatcher, TenantsFileError> {
        let store = self.clone();
        FileWatcher::watch([self.path.clone()], DEFAULT_SETTLE, move || {
            match store.reload() {
                Ok(_) => portcullis_identity::observe::reloaded("tenants", true),
                Err(error) => {
                    portcullis_identity::observe::reloaded("tenants", false);
                    #[cfg(feature = "tracing")]
                    tracing::warn!(%error, "tenants file refused; the last good records stay");
                    on_error(error);
                }
            }
        })
        .map_err(|e| TenantsFileError::new(&self.path, e.to_string()))
    }
}

impl TenantResolver for FileStore {
    fn resolve<'a>(&'a self, principal: &'a Principal) -> Resolving<'a> {
        self.store.resolve(principal)
    }

    fn tenant_status(&self, tenant_id: &str) -> Option<TenantStatus> {
        self.store.tenant_status(tenant_id)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
