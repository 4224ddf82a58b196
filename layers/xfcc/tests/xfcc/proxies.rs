//! Behind real nginx, Caddy and HAProxy.
