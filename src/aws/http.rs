//! The HTTP client every session uses: the SDK's default connector (rustls with aws-lc, proxy
//! settings from the environment, the configured timeouts), except that TLS, and the system trust
//! store it loads (about 3 ms of every run), is set up only when a request goes to an `https`
//! endpoint. A plain-HTTP endpoint (LocalStack) never pays for it; AWS itself is unchanged.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;

/// A client that sends `http://` requests over plain TCP and everything else over TLS.
pub fn client() -> SharedHttpClient {
    SchemeClient { plain: connector_client(false), tls: connector_client(true) }.into_shared()
}

/// The SDK's default client (see `aws_smithy_runtime::client::http::default_https_client`), with
/// or without TLS. Connectors are built on first use and cached per connector settings.
fn connector_client(tls: bool) -> SharedHttpClient {
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = ConnectorBuilder::default();
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        if tls {
            builder.tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build()
        } else {
            builder.build_http()
        }
    })
}

#[derive(Debug)]
struct SchemeClient {
    plain: SharedHttpClient,
    tls: SharedHttpClient,
}

impl HttpClient for SchemeClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SchemeConnector {
            plain: self.plain.http_connector(settings, components),
            tls: self.tls.clone(),
            settings: settings.clone(),
            components: components.clone(),
        }
        .into_shared()
    }
}

/// Picks the connector by the request's scheme; the TLS one is only built (by the TLS client,
/// which caches it) when a request needs it.
#[derive(Debug)]
struct SchemeConnector {
    plain: SharedHttpConnector,
    tls: SharedHttpClient,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for SchemeConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let plain =
            request.uri().get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        if plain {
            self.plain.call(request)
        } else {
            self.tls.http_connector(&self.settings, &self.components).call(request)
        }
    }
}
