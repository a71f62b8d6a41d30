//! The Pingora stream traits a connection wrapper passes straight to the stream it wraps
//! (`self.inner`): identity, TLS, timing, proxy and socket digests. Written once for the
//! wrappers that differ only in how they read and write ([`super::guard::SendGuard`],
//! `proxy::front::handover::Handover`).

/// Implement `UniqueID`, `Ssl`, `GetTimingDigest`, `GetProxyDigest` and `GetSocketDigest`
/// for `$t` by calling its `inner` stream.
macro_rules! delegate_stream_digests {
    ($t:ty) => {
        impl pingora_core::protocols::UniqueID for $t {
            fn id(&self) -> pingora_core::protocols::UniqueIDType {
                self.inner.id()
            }
        }

        impl pingora_core::protocols::Ssl for $t {
            fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
                self.inner.get_ssl()
            }

            fn get_ssl_digest(
                &self,
            ) -> Option<std::sync::Arc<pingora_core::protocols::tls::SslDigest>> {
                self.inner.get_ssl_digest()
            }

            fn selected_alpn_proto(&self) -> Option<pingora_core::protocols::ALPN> {
                self.inner.selected_alpn_proto()
            }
        }

        impl pingora_core::protocols::GetTimingDigest for $t {
            fn get_timing_digest(&self) -> Vec<Option<pingora_core::protocols::TimingDigest>> {
                self.inner.get_timing_digest()
            }

            fn get_read_pending_time(&self) -> std::time::Duration {
                self.inner.get_read_pending_time()
            }

            fn get_write_pending_time(&self) -> std::time::Duration {
                self.inner.get_write_pending_time()
            }
        }

        impl pingora_core::protocols::GetProxyDigest for $t {
            fn get_proxy_digest(
                &self,
            ) -> Option<std::sync::Arc<pingora_core::protocols::raw_connect::ProxyDigest>> {
                self.inner.get_proxy_digest()
            }

            fn set_proxy_digest(
                &mut self,
                digest: pingora_core::protocols::raw_connect::ProxyDigest,
            ) {
                self.inner.set_proxy_digest(digest)
            }
        }

        impl pingora_core::protocols::GetSocketDigest for $t {
            fn get_socket_digest(
                &self,
            ) -> Option<std::sync::Arc<pingora_core::protocols::SocketDigest>> {
                self.inner.get_socket_digest()
            }

            fn set_socket_digest(&mut self, digest: pingora_core::protocols::SocketDigest) {
                self.inner.set_socket_digest(digest)
            }
        }
    };
}

pub(crate) use delegate_stream_digests;
