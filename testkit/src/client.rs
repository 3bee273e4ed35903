//! Calls as one identity: `app.as_staff("sam").create("petstore/product", &body)`. Tokens are
//! signed with the test Herald's own secret, for the identity's subject, roles and tenant.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::harness::{TENANT, TestApp, created, send};

/// Who a [`Client`] calls as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub roles: Vec<String>,
    pub tenant: String,
}

/// An HTTP client of a [`TestApp`] that calls as one identity, or anonymously.
pub struct Client<'a> {
    app: &'a TestApp,
    identity: Option<Identity>,
    token: Option<String>,
}

impl TestApp {
    /// A caller with the role `user` in [`TENANT`].
    pub fn as_user(&self, sub: &str) -> Client<'_> {
        self.as_roles(sub, &["user"])
    }

    /// A caller with the role `staff` in [`TENANT`].
    pub fn as_staff(&self, sub: &str) -> Client<'_> {
        self.as_roles(sub, &["staff"])
    }

    /// A caller with the role `admin` in [`TENANT`].
    pub fn as_admin(&self, sub: &str) -> Client<'_> {
        self.as_roles(sub, &["admin"])
    }

    /// A caller with `roles` (custom ones too) in [`TENANT`].
    pub fn as_roles(&self, sub: &str, roles: &[&str]) -> Client<'_> {
        self.as_identity(Identity {
            sub: sub.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            tenant: TENANT.to_owned(),
        })
    }

    /// A caller with no token.
    pub fn anonymous(&self) -> Client<'_> {
        Client {
            app: self,
            identity: None,
            token: None,
        }
    }

    fn as_identity(&self, identity: Identity) -> Client<'_> {
        let roles: Vec<&str> = identity.roles.iter().map(String::as_str).collect();
        let token = self.token(&identity.sub, &roles, &identity.tenant);
        Client {
            app: self,
            identity: Some(identity),
            token: Some(token),
        }
    }
}

impl<'a> Client<'a> {
    /// The same subject and roles in another tenant.
    #[must_use]
    pub fn in_tenant(&self, tenant: &str) -> Client<'a> {
        match &self.identity {
            Some(identity) => self.app.as_identity(Identity {
                tenant: tenant.to_owned(),
                ..identity.clone()
            }),
            None => self.app.anonymous(),
        }
    }

    /// Who this client calls as (`None` when anonymous).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The bearer token it sends.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to `path` (e.g. `/v1/petstore/product`) with this client's token, to add
    /// headers to before [`send`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.app.request(method, path, self.token.as_deref())
    }

    pub async fn get(&self, path: &str) -> Response {
        send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        send(self.request(Method::PATCH, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        send(self.request(Method::DELETE, path)).await
    }

    /// Creates a document of `collection` (`petstore/product`) and returns it; fails the test
    /// unless the answer is `201`.
    pub async fn create(&self, collection: &str, body: &Value) -> Value {
        created(
            collection,
            self.post(&format!("/v1/{collection}"), body).await,
        )
        .await
    }

    /// Runs `command` on the document `id` of `collection` with `params`.
    pub async fn run(&self, collection: &str, id: &str, command: &str, params: &Value) -> Response {
        self.post(&format!("/v1/{collection}/{id}/{command}"), params)
            .await
    }
}
