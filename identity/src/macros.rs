//! Macros the layer crates share.

/// Writes `get_ref`, `get_mut` and `into_inner` for a service whose inner
/// service is the field `inner`, the same on every service (as
/// tower-http's `define_inner_service_accessors!`). Plumbing for the sibling
/// crates, not API.
#[doc(hidden)]
#[macro_export]
macro_rules! define_inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

/// Writes the associated types and `poll_ready` of a `Service` that only
/// adds to the request and hands it to its field `inner`, answering with
/// the inner service's own response, error and future. Plumbing for the
/// sibling crates, not API.
#[doc(hidden)]
#[macro_export]
macro_rules! define_pass_through_service {
    () => {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn poll_ready(
            &mut self,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<::std::result::Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }
    };
}
