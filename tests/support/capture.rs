//! A tracing subscriber that records every span (its name, parent and
//! fields as recorded) and knows the current span, so the layers' "is a
//! `portcullis` span current?" question gets a real answer. Shared by the
//! tests that read the request span.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};

/// One span as recorded: its name, parent and fields.
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    pub(crate) name: &'static str,
    pub(crate) parent: Option<u64>,
    pub(crate) fields: BTreeMap<String, String>,
}

thread_local! {
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Default)]
pub(crate) struct Capture {
    next: Arc<AtomicU64>,
    pub(crate) spans: Arc<Mutex<HashMap<u64, SpanRecord>>>,
    meta: Arc<Mutex<HashMap<u64, &'static Metadata<'static>>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = match attrs.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if attrs.is_contextual() => ENTERED.with(|e| e.borrow().last().copied()),
            None => None,
        };
        self.spans.lock().unwrap().insert(
            id,
            SpanRecord {
                name: attrs.metadata().name(),
                parent,
                fields,
            },
        );
        self.meta.lock().unwrap().insert(id, attrs.metadata());
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let record = spans.get_mut(&span.into_u64()).unwrap();
        values.record(&mut Fields(&mut record.fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &Id) {
        ENTERED.with(|e| e.borrow_mut().pop());
    }
    fn current_span(&self) -> tracing_core::span::Current {
        match ENTERED.with(|e| e.borrow().last().copied()) {
            Some(id) => {
                let meta = self.meta.lock().unwrap()[&id];
                tracing_core::span::Current::new(Id::from_u64(id), meta)
            }
            None => tracing_core::span::Current::none(),
        }
    }
}

impl Capture {
    /// The `portcullis` spans, each with its parent's name.
    pub(crate) fn request_spans(&self) -> Vec<(Option<&'static str>, BTreeMap<String, String>)> {
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<_> = spans
            .iter()
            .filter(|(_, s)| s.name == "portcullis")
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.iter()
            .map(|id| {
                let span = &spans[id];
                let parent = span.parent.map(|p| spans[&p].name);
                (parent, span.fields.clone())
            })
            .collect()
    }
}
