//! Test harness: a control server on 127.0.0.1:0 with a temporary database on either store
//! ([`Backend`]), driven with reqwest. [`on_both_stores!`] runs a test on each.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::pg_server;
use crate::control::{
    serve_state, AppState, CdnHealth, CdnHost, ControlConfig, ControlError, Database, EdgeSecret,
    PasswordHashing, Title, EDGE_SECRET_HEADER,
};
use crate::token::Keyring;

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const PASSWORD: &str = "correct horse battery";
pub const KEY: [u8; 32] = [7u8; 32];

pub fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::single("ctl", &KEY).expect("keyring"))
}

/// CDN health the test can flip.
#[derive(Default)]
pub struct TestHealth {
    down: Mutex<HashSet<String>>,
}

impl TestHealth {
    pub fn set_down(&self, name: &str, down: bool) {
        let mut d = self.down.lock().expect("lock");
        if down {
            d.insert(name.to_string());
        } else {
            d.remove(name);
        }
    }
}

impl CdnHealth for TestHealth {
    fn healthy(&self, host: &CdnHost) -> bool {
        !self.down.lock().expect("lock").contains(&host.name)
    }
}

/// Cheap argon2id parameters so tests run fast in debug builds (the default cost is checked
/// in `auth::tests`).
pub fn cheap_hashing() -> PasswordHashing {
    PasswordHashing {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A new database on the process's shared throwaway server ([`pg_server::shared`]).
    Postgres,
}

impl Backend {
    /// A new, empty database for one test (a SQLite file under `dir`).
    pub fn fresh_database(self, dir: &Path) -> Database {
        match self {
            Backend::Sqlite => Database::Sqlite(dir.join("data").join("control.db")),
            Backend::Postgres => Database::Postgres(pg_server::shared().create_database()),
        }
    }
}

/// Runs SQL on a test database (outside the store), returning rows as `a|b` lines.
/// `sqlite` and `postgres` are the same statement in each dialect.
pub fn raw_sql(db: &Database, sqlite: &str, postgres: &str) -> String {
    match db {
        Database::Sqlite(path) => {
            let c = rusqlite::Connection::open(path).expect("open");
            // As the store's connections do, so deletes cascade on both backends.
            c.pragma_update(None, "foreign_keys", "ON")
                .expect("foreign keys");
            let mut st = c.prepare(sqlite).expect("prepare");
            let n = st.column_count();
            let rows = st
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                                rusqlite::types::Value::Null => String::new(),
                                rusqlite::types::Value::Integer(i) => i.to_string(),
                                rusqlite::types::Value::Real(f) => f.to_string(),
                                rusqlite::types::Value::Text(t) => t,
                                rusqlite::types::Value::Blob(b) => format!("{b:?}"),
                            })
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map(|v| v.join("|"))
                })
                .expect("query");
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .expect("rows")
                .join("\n")
        }
        Database::Postgres(url) => pg_server::shared().psql(url, postgres).expect("psql"),
    }
}

/// Defines `on_sqlite::NAME` and `on_postgres::NAME` tests running `async fn NAME(b: Backend)`
/// on each store: the one suite, parameterised.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;

pub fn config(db: impl Into<Database>) -> ControlConfig {
    let mut c = ControlConfig::new(db, ADMIN);
    c.cdn_hosts = vec![
        CdnHost {
            name: "backup".into(),
            base_url: "https://cdn2.example.net/".into(),
            priority: 20,
        },
        CdnHost {
            name: "primary".into(),
            base_url: "http://127.0.0.1:8080".into(),
            priority: 10,
        },
    ];
    c.seed = Some(Title::demo());
    c.password_hashing = cheap_hashing();
    // Tests register many accounts from one (absent) address; the registration limit has its
    // own test.
    c.register_limits.per_ip = 10_000;
    c
}

/// A client that sends `secret` on every request, as the edge's proxy does.
pub fn edge_client(secret: &EdgeSecret) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(EDGE_SECRET_HEADER, secret.header_value());
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    pub state: AppState,
    pub health: Arc<TestHealth>,
    pub client: reqwest::Client,
    pub db: Database,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ControlError>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(b: Backend) -> TestServer {
        TestServer::start_with(b, |_| {}).await
    }

    pub async fn start_with(b: Backend, adjust: impl FnOnce(&mut ControlConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = b.fresh_database(dir.path());
        TestServer::start_on(db, dir, adjust).await
    }

    /// A server on `db` (`dir` lives as long as the server).
    pub async fn start_on(
        db: Database,
        dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut ControlConfig),
    ) -> TestServer {
        let mut cfg = config(db.clone());
        adjust(&mut cfg);
        let health = Arc::new(TestHealth::default());
        let state = AppState::open(cfg, keyring(), health.clone())
            .await
            .expect("open state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = edge_client(state.edge_secret());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_state(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestServer {
            origin: format!("http://{addr}"),
            state,
            health,
            client,
            db,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Graceful stop; returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), ControlError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.expect("serve task"),
            None => Ok(()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.origin)
    }

    /// Sends a request; returns status, headers and the JSON body (`Value::Null` if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json_body(&b);
        }
        Resp::from(rb.send().await.expect("send")).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Resp {
        self.call(Method::GET, path, bearer, &[], None).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call(method, path, Some(ADMIN), &[], body).await
    }

    pub async fn register(&self, email: &str) -> Resp {
        self.call(
            Method::POST,
            "/users",
            None,
            &[],
            Some(json!({ "email": email, "password": PASSWORD })),
        )
        .await
    }

    pub async fn login_from(&self, email: &str, password: &str, ip: &str) -> Resp {
        self.call(
            Method::POST,
            "/sessions",
            None,
            &[("X-Edge-Client-IP", ip)],
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    /// Registers and logs in; returns (user id, first profile id, session token).
    pub async fn user(&self, email: &str) -> (i64, i64, String) {
        let r = self.register(email).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let id = r.body["id"].as_i64().expect("id");
        let profile = r.body["profiles"][0]["id"].as_i64().expect("profile id");
        let l = self.login_from(email, PASSWORD, "192.0.2.1").await;
        assert_eq!(l.status, StatusCode::CREATED, "{:?}", l.body);
        (
            id,
            profile,
            l.body["token"].as_str().expect("token").to_string(),
        )
    }

    pub async fn set_tier(&self, user_id: i64, tier: &str) {
        let r = self
            .admin(
                Method::PUT,
                &format!("/admin/users/{user_id}/tier"),
                Some(json!({ "tier": tier })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    pub async fn create_title(&self, body: Value) {
        let r = self.admin(Method::POST, "/admin/titles", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }

    pub async fn playback(&self, title: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
        self.call(
            Method::POST,
            &format!("/playback/{title}"),
            Some(token),
            headers,
            None,
        )
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A title body for `POST /admin/titles`.
pub fn title_json(id: &str, name: &str, rating: &str, heights: &[u32]) -> Value {
    json!({
        "id": id,
        "name": name,
        "description": format!("About {name}."),
        "tags": ["test"],
        "rating": rating,
        "duration_seconds": 600,
        "origin_path": format!("/v/{id}/hls/master.m3u8"),
        "renditions": heights.iter().map(|h| json!({"height": h, "bandwidth": h * 3000})).collect::<Vec<_>>(),
    })
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    /// The `Retry-After` seconds of a refusal.
    #[track_caller]
    pub fn retry_after(&self) -> u64 {
        self.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds")
    }

    /// Asserts an error answer: status, JSON with this code and a message.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{}",
            self.text
        );
    }
}

/// JSON request bodies without reqwest's `json` feature.
pub trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(v).expect("serialise"))
    }
}

/// The JSON body of a response.
pub async fn json_of(r: reqwest::Response) -> Value {
    let text = r.text().await.expect("body");
    serde_json::from_str(&text).expect("JSON body")
}
