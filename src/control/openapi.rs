//! The OpenAPI 3 document (`GET /api/v1/openapi.json`), built from [`ROUTES`] plus hand-written
//! component schemas.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::error::ERROR_CODES;
use super::routes::{Auth, RouteSpec, API_PREFIX, ROUTES};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// `{name}` placeholders of a path.
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn query_param(name: &str) -> Value {
    match name {
        "page" => json!({
            "name": "page", "in": "query", "required": false,
            "description": "Page number, from 1.",
            "schema": { "type": "integer", "minimum": 1, "default": 1 }
        }),
        "per_page" => json!({
            "name": "per_page", "in": "query", "required": false,
            "description": "Items per page.",
            "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 }
        }),
        "q" => json!({
            "name": "q", "in": "query", "required": true,
            "description": "Search text (at most 200 characters; words of letters and digits are used).",
            "schema": { "type": "string", "minLength": 1, "maxLength": 200 }
        }),
        other => json!({ "name": other, "in": "query", "schema": { "type": "string" } }),
    }
}

/// Whether a path parameter is a numeric id (a user's or a profile's) rather than a title id.
fn is_integer_param(path: &str, param: &str) -> bool {
    path.starts_with("/admin/users/") || (path.starts_with("/profiles/") && param == "id")
}

fn status_of(code: &str) -> u16 {
    ERROR_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, s, _)| *s)
        .unwrap_or(500)
}

fn operation(spec: &RouteSpec) -> Value {
    let mut params: Vec<Value> = path_params(spec.path)
        .into_iter()
        .map(|p| {
            let schema = if is_integer_param(spec.path, p) {
                json!({ "type": "integer", "minimum": 1 })
            } else {
                json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" })
            };
            json!({ "name": p, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    params.extend(spec.query.iter().map(|q| query_param(q)));
    if spec.auth == Auth::Profile {
        params.push(json!({
            "name": "X-Profile-Id", "in": "header", "required": false,
            "description": "Profile to act for (default: the account's first profile).",
            "schema": { "type": "integer", "minimum": 1 }
        }));
    }
    if spec.op == super::routes::Op::Playback {
        params.push(json!({
            "name": "X-Edge-Country", "in": "header", "required": false,
            "description": "Set by the edge: the viewer's country (ISO 3166 alpha-2). Absent = unknown.",
            "schema": { "type": "string", "pattern": "^[A-Z]{2}$" }
        }));
    }
    if matches!(
        spec.op,
        super::routes::Op::Login | super::routes::Op::Register
    ) {
        params.push(json!({
            "name": "X-Edge-Client-IP", "in": "header", "required": false,
            "description": "Set by the edge: the client's address (login and registration limits).",
            "schema": { "type": "string" }
        }));
    }

    let mut responses = Map::new();
    let mut success = match spec.response {
        Some(s) => json!({ "description": "Success", "content": json_content(schema_ref(s)) }),
        None if spec.op == super::routes::Op::OpenApi => json!({
            "description": "The OpenAPI document",
            "content": json_content(json!({ "type": "object" }))
        }),
        None => json!({ "description": "Success (no body)" }),
    };
    if spec.op == super::routes::Op::Playback {
        success["headers"] = json!({ "Set-Cookie": {
            "description": "The same token as the edge's token cookie (`[tokens] cookie`): Path the \
                            title's folder, Max-Age the token's lifetime, Secure, HttpOnly, \
                            SameSite=Lax. A player that sends it plays the unsigned manifest URL.",
            "schema": { "type": "string" }
        }});
    }
    responses.insert(spec.status.to_string(), success);
    if spec.op == super::routes::Op::AdminPutTitle {
        responses.insert(
            "201".into(),
            json!({ "description": "Created", "content": json_content(schema_ref("AdminTitle")) }),
        );
    }
    if spec.op == super::routes::Op::AddToWatchlist {
        responses.insert(
            "200".into(),
            json!({ "description": "Listed already (its time and place are kept)",
                    "content": json_content(schema_ref("WatchlistItem")) }),
        );
    }
    let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = Default::default();
    // Any call may fail inside (500) or find the database unreachable (503).
    for code in spec
        .errors
        .iter()
        .copied()
        .chain(["internal", "unavailable"])
    {
        let codes = by_status.entry(status_of(code)).or_default();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    for (status, codes) in by_status {
        let schema = if codes.contains(&"invalid") {
            "ValidationError"
        } else {
            "Error"
        };
        let mut resp = json!({
            "description": format!("Error codes: {}", codes.join(", ")),
            "content": json_content(schema_ref(schema)),
        });
        if status == 429 || status == 503 {
            resp["headers"] = json!({ "Retry-After": {
                "description": "Seconds until a new attempt is accepted.",
                "schema": { "type": "integer" }
            }});
        }
        responses.insert(status.to_string(), resp);
    }

    let security = match spec.auth {
        Auth::Public => json!([]),
        Auth::Session | Auth::Profile => json!([{ "session": [] }]),
        Auth::Admin => json!([{ "admin": [] }]),
    };
    let mut op = json!({
        "operationId": spec.op.id(),
        "summary": spec.summary,
        "security": security,
        "parameters": params,
        "responses": responses,
    });
    if let Some(req) = spec.request {
        op["requestBody"] = json!({ "required": true, "content": json_content(schema_ref(req)) });
    }
    op
}

fn components() -> Value {
    let codes: Vec<&str> = ERROR_CODES.iter().map(|(c, _, _)| *c).collect();
    let ts = json!({ "type": "integer", "format": "int64", "description": "Unix seconds" });
    let rendition = json!({
        "type": "object", "required": ["height", "bandwidth"],
        "properties": {
            "height": { "type": "integer", "minimum": 1, "maximum": 8640 },
            "bandwidth": { "type": "integer", "minimum": 1, "description": "Bits per second" }
        }
    });
    let title_props = json!({
        "id": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
        "name": { "type": "string", "maxLength": 200 },
        "description": { "type": "string", "maxLength": 5000 },
        "tags": { "type": "array", "maxItems": 32, "items": { "type": "string", "maxLength": 40 } },
        "rating": { "$ref": "#/components/schemas/Rating" },
        "maturity": { "$ref": "#/components/schemas/Maturity" },
        "duration_seconds": { "type": "integer", "minimum": 1, "maximum": super::model::MAX_DURATION_SECONDS },
        "renditions": { "type": "array", "items": schema_ref("Rendition") },
        "countries": { "type": "array", "items": { "type": "string", "pattern": "^[A-Z]{2}$" },
                       "description": "Allowed countries; empty = everywhere" },
        "available_from": { "type": "integer", "format": "int64", "nullable": true },
        "available_until": { "type": "integer", "format": "int64", "nullable": true }
    });
    let mut admin_props = title_props.clone();
    admin_props["origin_path"] =
        json!({ "type": "string", "description": "Master playlist path on the CDN" });
    admin_props["acl_path"] =
        json!({ "type": "string", "description": "The title's folder (token ACL)" });
    let mut input_props = admin_props.clone();
    if let Some(m) = input_props.as_object_mut() {
        m.remove("maturity");
    }
    input_props["acl_path"] = json!({
        "type": "string",
        "description": "The title's folder (token ACL), a prefix of origin_path ending in '/'. Default: origin_path's parent folder."
    });
    json!({
        "securitySchemes": {
            "session": { "type": "http", "scheme": "bearer", "description": "Session token from POST /sessions" },
            "admin": { "type": "http", "scheme": "bearer", "description": "The configured admin token" }
        },
        "schemas": {
            "Error": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "enum": codes },
                    "message": { "type": "string" }
                }
            },
            "ValidationError": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "enum": codes },
                    "message": { "type": "string" },
                    "fields": { "type": "object", "additionalProperties": { "type": "string" },
                                "description": "Field name → problem" }
                }
            },
            "Tier": { "type": "string", "enum": ["basic", "standard", "premium"] },
            "Maturity": { "type": "string", "enum": ["KIDS", "TEEN", "ADULT"] },
            "Rating": { "type": "string", "enum": ["G", "PG", "PG-13", "R"],
                        "description": "G and PG: KIDS; PG-13: TEEN; R: ADULT" },
            "RegisterRequest": {
                "type": "object", "required": ["email", "password"],
                "properties": {
                    "email": { "type": "string", "format": "email" },
                    "password": { "type": "string", "minLength": super::model::MIN_PASSWORD_CHARS },
                    "display_name": { "type": "string", "maxLength": 50 },
                    "language": { "type": "string", "default": "en" }
                }
            },
            "LoginRequest": {
                "type": "object", "required": ["email", "password"],
                "properties": { "email": { "type": "string" }, "password": { "type": "string" } }
            },
            "User": {
                "type": "object", "required": ["id", "email", "tier", "created_at"],
                "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "email": { "type": "string" },
                    "tier": schema_ref("Tier"),
                    "created_at": ts
                }
            },
            "Session": {
                "type": "object", "required": ["token", "token_type", "expires_at", "user"],
                "properties": {
                    "token": { "type": "string" },
                    "token_type": { "type": "string", "enum": ["Bearer"] },
                    "expires_at": ts,
                    "user": schema_ref("User")
                }
            },
            "Profile": {
                "type": "object",
                "required": ["id", "display_name", "language", "maturity", "tier", "created_at"],
                "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "display_name": { "type": "string" },
                    "language": { "type": "string" },
                    "maturity": schema_ref("Maturity"),
                    "tier": schema_ref("Tier"),
                    "created_at": ts
                }
            },
            "ProfileRequest": {
                "type": "object", "required": ["display_name"],
                "properties": {
                    "display_name": { "type": "string", "minLength": 1, "maxLength": 50 },
                    "language": { "type": "string", "default": "en" },
                    "maturity": { "allOf": [schema_ref("Maturity")], "default": "ADULT" }
                }
            },
            "ProfileList": {
                "type": "object", "required": ["items"],
                "properties": { "items": { "type": "array", "items": schema_ref("Profile") } }
            },
            "Account": {
                "type": "object", "required": ["id", "email", "tier", "created_at", "profiles"],
                "properties": {
                    "id": { "type": "integer", "format": "int64" },
                    "email": { "type": "string" },
                    "tier": schema_ref("Tier"),
                    "created_at": ts,
                    "profiles": { "type": "array", "items": schema_ref("Profile") }
                }
            },
            "Rendition": rendition,
            "Title": { "type": "object", "properties": title_props },
            "AdminTitle": { "type": "object", "properties": admin_props },
            "TitleInput": {
                "type": "object",
                "required": ["id", "name", "rating", "duration_seconds", "origin_path", "renditions"],
                "description": "For PUT the id may be omitted (taken from the path).",
                "properties": input_props
            },
            "TitlePage": {
                "type": "object", "required": ["items", "page", "per_page", "total"],
                "properties": {
                    "items": { "type": "array", "items": schema_ref("Title") },
                    "page": { "type": "integer" }, "per_page": { "type": "integer" },
                    "total": { "type": "integer" }
                }
            },
            "TierRequest": {
                "type": "object", "required": ["tier"],
                "properties": { "tier": schema_ref("Tier") }
            },
            "Playback": {
                "type": "object",
                "required": ["title_id", "url", "cdn", "fallbacks", "renditions", "max_height", "expires_at"],
                "properties": {
                    "title_id": { "type": "string" },
                    "url": { "type": "string", "description": "Signed master playlist URL (token in the path, ACL = the title's folder)" },
                    "cdn": { "type": "string", "description": "Chosen CDN host name" },
                    "fallbacks": { "type": "array", "items": { "type": "string" },
                                   "description": "The manifest on the other hosts, best first" },
                    "renditions": { "type": "array", "items": schema_ref("Rendition") },
                    "max_height": { "type": "integer", "nullable": true, "description": "null = unlimited" },
                    "expires_at": ts
                }
            },
            "ProgressRequest": {
                "type": "object", "required": ["position_seconds"],
                "properties": { "position_seconds": { "type": "integer", "minimum": 0 } }
            },
            "Progress": {
                "type": "object", "required": ["title_id", "position_seconds", "updated_at"],
                "properties": {
                    "title_id": { "type": "string" },
                    "position_seconds": { "type": "integer" },
                    "updated_at": ts
                }
            },
            "ContinueItem": {
                "type": "object",
                "required": ["title_id", "name", "duration_seconds", "position_seconds", "updated_at"],
                "properties": {
                    "title_id": { "type": "string" },
                    "name": { "type": "string" },
                    "duration_seconds": { "type": "integer" },
                    "position_seconds": { "type": "integer" },
                    "updated_at": ts
                }
            },
            "ContinueWatchingPage": {
                "type": "object", "required": ["items", "page", "per_page", "total"],
                "properties": {
                    "items": { "type": "array", "items": schema_ref("ContinueItem") },
                    "page": { "type": "integer" }, "per_page": { "type": "integer" },
                    "total": { "type": "integer" }
                }
            },
            "WatchlistItem": {
                "type": "object", "required": ["title_id", "added_at", "title"],
                "properties": {
                    "title_id": { "type": "string" },
                    "added_at": ts,
                    "title": schema_ref("Title")
                }
            },
            "WatchlistPage": {
                "type": "object", "required": ["items", "page", "per_page", "total"],
                "properties": {
                    "items": { "type": "array", "items": schema_ref("WatchlistItem") },
                    "page": { "type": "integer" }, "per_page": { "type": "integer" },
                    "total": { "type": "integer" }
                }
            }
        }
    })
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for spec in ROUTES {
        let item = paths
            .entry(spec.path.to_string())
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_ascii_lowercase()] = operation(spec);
    }
    let codes: Vec<String> = ERROR_CODES
        .iter()
        .map(|(c, s, d)| format!("- `{c}` ({s}): {d}"))
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "edge control plane",
            "version": "1",
            "description": format!(
                "Accounts, catalog, playback authorisation, watch progress and watchlists. \
                 Every error is JSON `{{\"code\", \"message\"}}` (validation errors add \
                 `fields`). Codes:\n{}",
                codes.join("\n")
            )
        },
        "servers": [{ "url": API_PREFIX }],
        "paths": paths,
        "components": components(),
    })
}

/// The document as JSON bytes (built once per state).
pub fn document_bytes() -> Bytes {
    Bytes::from(serde_json::to_vec(&document()).unwrap_or_default())
}
