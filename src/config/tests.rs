use std::time::Duration;

use super::value::net as parse_net;
use super::*;

fn parse(text: &str) -> Result<Config<Parsed>, ConfigError> {
    Config::parse(text, Path::new("/etc/edge"))
}

#[test]
fn shipped_config_loads_whole() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("edge.toml");
    let c = Config::load(&path).expect("shipped edge.toml must load");
    assert_eq!(c.server.role, Role::Edge);
    assert_eq!(c.server.http, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.server.admin, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.server.threads, 2);
    assert!(c.server.fast_hits, "the player front is on by default");
    assert!(
        c.prefetch.is_empty(),
        "next-segment prefetch is off by default"
    );
    let limits = c.server.limits;
    assert_eq!(limits.header_timeout, Duration::from_secs(20));
    assert_eq!(limits.send_timeout, Duration::from_secs(60));
    assert_eq!(
        limits.max_connections, None,
        "default: half the open-file limit, read at start"
    );
    assert_eq!(limits.max_connections_per_ip, 256);
    assert_eq!(c.server.grace_period, Duration::from_secs(10));
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(c.server.public_url, "http://127.0.0.1:8080");
    assert_eq!(c.server.https, Some("0.0.0.0:8443".parse().unwrap()));
    let tls = c.tls.as_ref().expect("tls on");
    assert_eq!(
        tls.certs[0].cert,
        path.parent().unwrap().join("certs/edge.pem")
    );
    assert_eq!(
        tls.dev_names.as_deref(),
        Some(
            &[
                "localhost".to_string(),
                "127.0.0.1".into(),
                "edge.test".into()
            ][..]
        )
    );
    assert_eq!(
        c.geo.database.as_deref(),
        Some(
            path.parent()
                .unwrap()
                .join("geoip/edge-test.mmdb")
                .as_path()
        )
    );
    assert_eq!(
        c.geo.trusted_proxies,
        vec![parse_net("", "127.0.0.1/32").unwrap()]
    );
    assert_eq!(c.geo.policy.status(), 451);
    assert_eq!(c.geo.policy.rules()[0].prefix, "/v/uk-only/");
    assert_eq!(c.cache.memory, 256 << 20);
    assert_eq!(c.cache.disk, 1 << 30);
    assert_eq!(c.cache.max_object, 64 << 20);
    assert_eq!(c.cache.dir, path.parent().unwrap().join("data/cache"));
    assert_eq!(c.cache.lock_timeout, Duration::from_secs(30));
    assert_eq!(c.cache.fill_memory, 64 << 20, "a quarter of memory");
    assert_eq!(c.cache.fill_stall, Duration::from_secs(1));
    assert_eq!(c.cache.default_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(c.cache.vod_playlist_ttl, Duration::from_secs(3600));
    assert_eq!(c.cache.live_playlist_fraction, 0.5);
    assert_eq!(c.cache.max_ttl, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.cache.stale_timeout, Duration::from_secs(1));
    assert_eq!(c.cache.disk_admission, DiskAdmission::SecondHitWhenFull);
    assert!(c.cache.rules.is_empty());
    assert_eq!(
        c.purge.allow,
        vec![
            parse_net("", "127.0.0.1/32").unwrap(),
            parse_net("", "::1").unwrap()
        ]
    );
    // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6: they still match.
    let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert!(c.purge.allow.iter().any(|n| n.contains(mapped)));
    assert!(c.geo.trusted_proxies[0].contains(mapped));
    assert_eq!(c.cache.negative_ttl, Duration::from_secs(10));
    assert_eq!(c.cache.stale_while_revalidate, Duration::from_secs(5));
    assert_eq!(c.cache.stale_if_error, Duration::from_secs(300));
    assert_eq!(c.cors.allow_origins, vec!["*".to_string()]);
    let demo = c.demo.as_ref().expect("demo on");
    assert_eq!(demo.listen, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(demo.title, "/demo/ts/master.m3u8");
    assert!(demo.media.ends_with("tests/fixtures/media"));
    assert_eq!(c.origins.len(), 1);
    assert_eq!(c.origins[0].name, "demo");
    assert_eq!(c.origins[0].nodes[0].addr, demo.listen);
}

#[test]
fn the_shipped_prefetch_example_parses_with_its_defaults() {
    let example: String = EMBEDDED_DEFAULT
        .lines()
        .skip_while(|l| *l != "# [[prefetch]]")
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    assert!(example.starts_with("[[prefetch]]"), "{example}");
    let text =
        format!("[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:9\" }}]\n{example}");
    let c = parse(&text).expect("the commented [[prefetch]] example parses");
    assert_eq!(
        c.prefetch,
        vec![PrefetchRule {
            prefix: "/vod/".into(),
            segments: 2,
            concurrency: 4,
            max_bytes: 64 << 20,
            pause: Duration::from_secs(10),
        }]
    );
}

#[test]
fn embedded_default_is_the_shipped_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("edge.toml");
    assert_eq!(std::fs::read_to_string(path).unwrap(), EMBEDDED_DEFAULT);
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse("[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n").unwrap();
    assert_eq!(c.server.http.port(), 8080);
    assert_eq!(c.cache.dir, Path::new("/etc/edge/data/cache"));
    assert_eq!(c.origins[0].nodes[0].weight, 100);
    assert!(c.demo.is_none());
    assert_eq!(
        c.log,
        LogConfig::default(),
        "no access log unless asked for"
    );
    // Without [geo] the reload interval keeps its default: the reloader ticks at the shorter
    // of the TLS and geo intervals, and a zero tick would spin.
    assert_eq!(c.geo.reload_interval, Duration::from_secs(10));
    assert!(c.summary().starts_with("ok: role=edge"));
    let limits = c.server.limits;
    assert_eq!(
        (limits.header_timeout, limits.send_timeout),
        (Duration::from_secs(20), Duration::from_secs(60))
    );
    assert_eq!(
        (limits.max_connections, limits.max_connections_per_ip),
        (None, 256)
    );
    assert_eq!(
        c.server.head,
        crate::limits::size::HeadLimits {
            max_request_line: 8192,
            max_header_field: 8192,
            max_head: 32768
        }
    );
    assert!(c.server.forward_headers.is_empty() && c.server.upgrade_prefixes.is_empty());
    assert_eq!(
        c.server.upgrade_socket,
        c.cache.dir.join("upgrade.sock"),
        "the upgrade socket defaults to the cache folder"
    );
}

#[test]
fn head_limits_forward_headers_and_upgrade_prefixes_parse() {
    let c = parse(&format!(
        "[server]\nmax_request_line = \"4 KiB\"\nmax_header_field = \"1 KiB\"\nmax_head = \"16 KiB\"\nforward_headers = [\"X-Forwarded-Proto\"]\nupgrade_prefixes = [\"/ws/\"]\n{POOL}"
    ))
    .unwrap();
    assert_eq!(
        c.server.head,
        crate::limits::size::HeadLimits {
            max_request_line: 4096,
            max_header_field: 1024,
            max_head: 16384
        }
    );
    assert_eq!(
        c.server.forward_headers,
        vec!["x-forwarded-proto".to_string()]
    );
    assert_eq!(c.server.upgrade_prefixes, vec!["/ws/".to_string()]);
}

#[test]
fn connection_limits_parse_and_zero_means_no_cap() {
    let c = parse(&format!(
        "[server]\nheader_timeout = \"1s\"\nsend_timeout = \"500ms\"\nmax_connections = 0\nmax_connections_per_ip = 0\n{POOL}"
    ))
    .unwrap();
    let limits = c.server.limits;
    assert_eq!(limits.header_timeout, Duration::from_secs(1));
    assert_eq!(limits.send_timeout, Duration::from_millis(500));
    assert_eq!(limits.max_connections, Some(0));
    assert_eq!(limits.max_connections_per_ip, 0);
}

#[test]
fn pools_are_sorted_by_priority() {
    let c = parse(
        "[[origins]]\nname = \"b\"\npriority = 5\nnodes = [{ addr = \"127.0.0.1:2\" }]\n\
         [[origins]]\nname = \"a\"\npriority = 1\nnodes = [{ addr = \"127.0.0.1:1\" }]\n",
    )
    .unwrap();
    assert_eq!(c.origins[0].name, "a");
    assert_eq!(c.origins[1].name, "b");
}

#[test]
fn bad_configs_name_the_key_and_reason() {
    const POOL: &str = "[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n";
    let cases: &[(&str, &str, &str)] = &[
        ("[server]\nlisten = \"x\"\n", "server.listen", "unknown field `listen`"),
        ("[server]\nhttp = \"localhost\"\n", "server.http", "invalid listen address \"localhost\""),
        ("[server]\nrole = \"cdn\"\n", "server.role", "unknown role \"cdn\""),
        ("[server]\nthreads = 0\n", "server.threads", "out of range"),
        ("[server]\nthreads = \"two\"\n", "server.threads", "invalid type"),
        ("[server]\nfast_hits = \"yes\"\n", "server.fast_hits", "invalid type"),
        ("[server]\ngrace_period = \"soon\"\n", "server.grace_period", "invalid duration \"soon\""),
        ("[server]\nadmin = \"0.0.0.0:8080\"\n", "server.admin", "must differ from server.http"),
        ("[server]\nheader_timeout = \"0s\"\n", "server.header_timeout", "greater than 0"),
        ("[server]\nheader_timeout = \"slow\"\n", "server.header_timeout", "invalid duration"),
        ("[server]\nsend_timeout = \"0ms\"\n", "server.send_timeout", "greater than 0"),
        ("[server]\nmax_connections = -1\n", "server.max_connections", "out of range"),
        ("[server]\nmax_connections = \"many\"\n", "server.max_connections", "invalid type"),
        ("[server]\nmax_connections_per_ip = 20000000\n", "server.max_connections_per_ip", "out of range"),
        ("[server]\npublic_url = \"edge.example\"\n", "server.public_url", "must start with http://"),
        ("[server]\nmax_request_line = \"100\"\n", "server.max_request_line", "out of range"),
        ("[server]\nmax_header_field = \"2 MiB\"\n", "server.max_header_field", "out of range"),
        ("[server]\nmax_head = \"lots\"\n", "server.max_head", "invalid size"),
        ("[server]\nmax_head = \"4 KiB\"\n", "server.max_head", "at least max_request_line"),
        ("[server]\nforward_headers = [\"X-Forwarded-Proto\", \"Cookie\"]\n", "server.forward_headers[1]", "not a field the edge removes"),
        ("[server]\nupgrade_prefixes = [\"ws/\"]\n", "server.upgrade_prefixes[0]", "must start with '/'"),
        ("[server]\nupgrade_socket = \"/run/edge/a-very-long-folder-name-for-a-socket/that-is-longer-than-what-sun-path/allows-for-a-unix-socket-on-linux.sock\"\n", "server.upgrade_socket", "at most 107"),
        ("[cache]\nmemory = \"lots\"\n", "cache.memory", "invalid size \"lots\""),
        ("[cache]\nmemory = \"1 KiB\"\n", "cache.memory", "at least 1 MiB"),
        ("[cache]\nmax_object = \"0\"\n", "cache.max_object", "greater than 0"),
        // No memory-only mode: foyer's block engine divides by the tier's block count.
        ("[cache]\ndisk = \"0 MiB\"\n", "cache.disk", "at least 4 blocks"),
        // A max_object near u64::MAX once overflowed the 4-block check (found by fuzz/config).
        (
            "[cache]\nmax_object = \"1111111111111111111111111111111111111164 MiB\"\n",
            "cache.disk",
            "at least 4 blocks of 16.0 EiB",
        ),
        ("[cache]\ndisk = \"8 MiB\"\n", "cache.disk", "too small for cache.max_object"),
        ("[cache]\ndir = \"\"\n", "cache.dir", "must not be empty"),
        ("[cache]\nttl = \"1h\"\n", "cache.ttl", "unknown field `ttl`"),
        ("[cors]\nallow_origins = [\"player.example\"]\n", "cors.allow_origins[0]", "must be \"*\" or an origin"),
        ("", "origins", "at least one [[origins]] pool is required"),
        ("[[origins]]\nname = \"o\"\nnodes = []\n", "origins[0].nodes", "at least one node"),
        ("[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1\" }]\n", "origins[0].nodes[0].addr", "has no port"),
        ("[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\", weight = 0 }]\n", "origins[0].nodes[0].weight", "out of range"),
        ("[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\", wieght = 5 }]\n", "origins[0].nodes[0].wieght", "unknown field `wieght`"),
        ("[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\nconnect_timeout = \"fast\"\n", "origins[0].connect_timeout", "invalid duration"),
        ("[[origins]]\nnodes = [{ addr = \"127.0.0.1:1\" }]\n", "origins[0]", "missing field `name`"),
        ("[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:2\" }]\n", "origins", "used twice"),
        ("[demo]\ntitle = \"demo/ts/master.m3u8\"\n", "demo.title", "must be a path"),
        ("[demo]\nlisten = \"0.0.0.0:8080\"\n", "demo.listen", "must differ"),
        ("[cache]\nlive_playlist_fraction = 1.5\n", "cache.live_playlist_fraction", "out of range"),
        ("[cache]\ndisk_admission = \"sometimes\"\n", "cache.disk_admission", "unknown value"),
        ("[cache]\nstale_timeout = \"0s\"\n", "cache.stale_timeout", "greater than 0"),
        ("[cache]\nfill_memory = \"0\"\n", "cache.fill_memory", "greater than 0"),
        ("[cache]\nfill_memory = \"lots\"\n", "cache.fill_memory", "invalid size"),
        ("[cache]\nfill_stall = \"0s\"\n", "cache.fill_stall", "greater than 0"),
        ("[cache]\ntargeted_field = \"Edge Cache\"\n", "cache.targeted_field", "not a valid header field name"),
        ("[[cache.rules]]\nprefix = \"live/\"\nttl = \"1s\"\n", "cache.rules[0].prefix", "must start with '/'"),
        ("[[cache.rules]]\nprefix = \"/live/\"\nttl = \"often\"\n", "cache.rules[0].ttl", "invalid duration"),
        ("[[cache.slices]]\nprefix = \"vod/\"\nsize = \"4 MiB\"\n", "cache.slices[0].prefix", "must start with '/'"),
        ("[[cache.slices]]\nprefix = \"/vod/\"\nsize = \"big\"\n", "cache.slices[0].size", "invalid size"),
        ("[[cache.slices]]\nprefix = \"/vod/\"\nsize = \"4 KiB\"\n", "cache.slices[0].size", "out of range"),
        ("[[cache.slices]]\nprefix = \"/vod/\"\nsize = \"128 MiB\"\n", "cache.slices[0].size", "at most cache.max_object"),
        ("[[cache.slices]]\nprefix = \"/vod/\"\n", "cache.slices[0]", "missing field `size`"),
        ("[[cache.slices]]\nprefix = \"/vod/\"\nsize = \"1 MiB\"\n[[cache.slices]]\nprefix = \"/vod/\"\nsize = \"2 MiB\"\n", "cache.slices[1].prefix", "already sliced"),
        ("[purge]\nallow = [\"localhost\"]\n", "purge.allow[0]", "not an IP address or network"),
        ("[purge]\nfleet = \"mysql://db/edge\"\n", "purge.fleet", "mysql:// scheme is not supported"),
        ("[purge]\nfleet = \"db.internal\"\n", "purge.fleet", "postgres://"),
        ("[purge]\nfleet_poll = \"10ms\"\n", "purge.fleet_poll", "must be from 50ms to 1m"),
        ("[purge]\nfleet_poll = \"often\"\n", "purge.fleet_poll", "invalid duration"),
        ("[server]\nhttps = \"127.0.0.1:8443\"\n", "server.https", "needs a [tls] section"),
        ("[tls]\ncerts = [{ cert = \"a.pem\", key = \"a-key.pem\" }]\n", "tls", "set [server] https"),
        ("[server]\nhttps = \"127.0.0.1:8443\"\n[tls]\ncerts = []\n", "tls.certs", "at least one"),
        ("[geo]\ntrusted_proxies = [\"proxy\"]\n", "geo.trusted_proxies[0]", "not an IP address"),
        ("[geo]\nstatus = 200\n", "geo.status", "out of range"),
        ("[[geo.rules]]\nprefix = \"/v/\"\nallow = [\"GB\"]\n", "geo.database", "need a database"),
        ("[geo]\ndatabase = \"x.mmdb\"\n[[geo.rules]]\nprefix = \"/v/\"\nallow = [\"GB\"]\nunknown = \"maybe\"\n", "geo.rules[0].unknown", "expected"),
    ];
    for (text, key, reason) in cases {
        let text = if text.contains("[[origins]]") || text.contains("[demo]") || text.is_empty() {
            text.to_string()
        } else {
            format!("{text}{POOL}")
        };
        let err = parse(&text).expect_err(&format!("config should fail: {text}"));
        assert_eq!(&err.key, key, "key for {text:?}: {err}");
        assert!(
            err.reason.contains(reason),
            "reason for {text:?}: got {:?}, want {:?}",
            err.reason,
            reason
        );
    }
}

#[test]
fn ttl_rules_are_longest_prefix_first() {
    let c = parse(
        "[[cache.rules]]\nprefix = \"/live/\"\nttl = \"2s\"\n[[cache.rules]]\nprefix = \"/live/sports/\"\nttl = \"1s\"\noverride_origin = true\n\
         [[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n",
    )
    .unwrap();
    assert_eq!(c.cache.rules[0].prefix, "/live/sports/");
    assert!(c.cache.rules[0].override_origin);
    assert_eq!(c.cache.rules[1].ttl, Duration::from_secs(2));
}

#[test]
fn slice_rules_are_off_by_default_and_longest_prefix_first() {
    assert!(parse(POOL).unwrap().cache.slices.is_empty());
    let c = parse(&format!(
        "[[cache.slices]]\nprefix = \"/vod/\"\nsize = \"4 MiB\"\n[[cache.slices]]\nprefix = \"/vod/mp4/\"\nsize = \"1 MiB\"\n{POOL}"
    ))
    .unwrap();
    assert_eq!(c.cache.slices[0].prefix, "/vod/mp4/");
    assert_eq!(c.cache.slices[0].size, 1 << 20);
    assert_eq!(c.cache.slices[1].size, 4 << 20);
}

#[test]
fn syntax_errors_are_reported() {
    let err = parse("[server\nhttp = 1").unwrap_err();
    assert!(!err.reason.is_empty());
}

const POOL: &str = "[[origins]]\nname = \"o\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n";

/// Parsing reads nothing: every file named below is missing and the origin name does not
/// resolve, yet the text parses; resolving then names the key of the first missing piece.
#[test]
fn parsing_does_no_io_and_resolving_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = "[tokens]\nkeys = [{ id = \"k\", secret_file = \"k.key\" }]\n";
    let edgeauth = "[tokens.edgeauth]\nkey_file = \"ea.key\"\n";
    let control = "[control]\nadmin_token_file = \"admin\"\n";
    // Sorted by priority the CA pool comes first, but errors keep the file's index. The bad
    // port fails the lookup without asking DNS.
    let name = "[[origins]]\nname = \"n\"\npriority = 5\nnodes = [{ addr = \"127.0.0.1:http\" }]\n";
    let ca =
        "[[origins]]\nname = \"o\"\nca_file = \"ca.pem\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n";
    let text = format!("{key}{edgeauth}{control}{name}{ca}");
    let parsed =
        Config::parse(&text, dir.path()).expect("parsing reads no file and resolves no name");
    assert_eq!(parsed.origins[0].name, "o");
    // Supply one missing piece at a time; each step fails on the next key.
    let steps = [
        ("tokens.keys[0]", "k.key", "ab".repeat(32)),
        ("tokens.edgeauth", "ea.key", "00ff".to_string()),
        (
            "control.admin_token",
            "admin",
            "a-long-enough-admin-token".to_string(),
        ),
        ("origins[1].ca_file", "unused", String::new()),
    ];
    for (want_key, file, content) in steps {
        let err = Config::parse(&text, dir.path())
            .unwrap()
            .resolve()
            .expect_err("a piece is missing");
        assert_eq!(err.key, want_key, "{err}");
        std::fs::write(dir.path().join(file), content).unwrap();
    }
    let text = format!("{key}{edgeauth}{control}{name}");
    let err = Config::parse(&text, dir.path())
        .unwrap()
        .resolve()
        .unwrap_err();
    assert_eq!(err.key, "origins[0].nodes[0].addr", "{err}");
    assert!(err.reason.contains("cannot resolve"), "{err}");
}

#[test]
fn resolving_reads_keys_and_configures_the_control_plane_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.key"), "ab".repeat(32)).unwrap();
    std::fs::write(dir.path().join("admin"), "  a-long-enough-admin-token\n").unwrap();
    let text = format!(
        "[tokens]\nkeys = [{{ id = \"k\", secret_file = \"k.key\" }}]\n\
         [control]\nadmin_token_file = \"admin\"\nbasic_max_height = 360\n\
         registrations_per_address = 3\nlogin_window = \"5m\"\n[demo]\n{POOL}"
    );
    let c = Config::load_str(&text, dir.path()).unwrap();
    assert_eq!(c.tokens.as_ref().unwrap().keyring.current_id(), "k");
    let plane = c.control.as_ref().expect("control on");
    assert_eq!(plane.admin_token, "a-long-enough-admin-token");
    assert_eq!(plane.tier_max_height.basic, 360);
    assert_eq!(plane.tier_max_height.standard, 1080);
    assert_eq!(
        plane.database,
        crate::control::Database::Sqlite(dir.path().join("data/control.db"))
    );
    let pg = Config::load_str(
        &text.replace(
            "[control]\n",
            "[control]\ndatabase = \"postgres://edge@127.0.0.1:5432/edge\"\n",
        ),
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        pg.control.expect("control on").database,
        crate::control::Database::Postgres("postgres://edge@127.0.0.1:5432/edge".into()),
        "a postgres:// URL is a PostgreSQL database, not a SQLite file in a folder named postgres:"
    );
    // Edges sharing a PostgreSQL control plane share their purges, unless told otherwise.
    assert_eq!(
        pg.purge.fleet,
        super::purge::Fleet::Postgres("postgres://edge@127.0.0.1:5432/edge".into())
    );
    assert_eq!(
        c.purge.fleet.url(),
        None,
        "a SQLite control plane: no fleet"
    );
    let off = Config::load_str(
        &format!(
            "{}[purge]\nfleet = \"off\"\n",
            text.replace(
                "[control]\n",
                "[control]\ndatabase = \"postgres://edge@127.0.0.1:5432/edge\"\n",
            )
        ),
        dir.path(),
    )
    .unwrap();
    assert_eq!(off.purge.fleet, super::purge::Fleet::Off);
    let own = Config::load_str(
        &format!(
            "{}[purge]\nfleet = \"postgresql://edge@10.0.0.9/bans\"\nfleet_poll = \"250ms\"\n",
            text.replace(
                "[control]\n",
                "[control]\ndatabase = \"postgres://edge@127.0.0.1:5432/edge\"\n",
            )
        ),
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        own.purge.fleet.url(),
        Some("postgresql://edge@10.0.0.9/bans")
    );
    assert_eq!(own.purge.fleet_poll, Duration::from_millis(250));
    assert_eq!(plane.cdn_hosts[0].base_url, c.server.public_url);
    assert!(
        plane.seed.is_some(),
        "the demo title is seeded when [demo] is on"
    );
    let login = crate::control::LoginLimits {
        per_account: 5,
        per_ip: 20,
        window: Duration::from_secs(300),
    };
    assert_eq!(plane.login_limits, login);
    let register = crate::control::RegisterLimits {
        per_ip: 3,
        window: Duration::from_secs(3600),
    };
    assert_eq!(plane.register_limits, register);

    std::fs::write(dir.path().join("admin"), "short").unwrap();
    let err = Config::load_str(&text, dir.path()).unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.reason.as_str()),
        (
            "control.admin_token",
            "the admin token must be at least 16 characters"
        )
    );
}

#[test]
fn secrets_need_exactly_one_source() {
    let err = parse(&format!("[tokens]\nkeys = [{{ id = \"k\" }}]\n{POOL}")).unwrap_err();
    assert_eq!(err.key, "tokens.keys[0]");
    assert!(err.reason.contains("exactly one"), "{err}");
}

/// `[control]` values the control plane would refuse at start are config errors with a key.
#[test]
fn control_errors_name_the_key() {
    let tokens = "[tokens]\nkeys = [{ id = \"k\", secret_env = \"EDGE_TEST_UNSET\" }]\n";
    let cases: &[(&str, &str, &str)] = &[
        ("[control]\n", "control", "needs [tokens]"),
        ("[control]\ncdn_hosts = [{ name = \"a\", base_url = \"https://cdn.example/v\" }]\n", "control.cdn_hosts[0].base_url", "bare origin"),
        ("[control]\ncdn_hosts = [{ name = \"a\", base_url = \"https://user@cdn.example\" }]\n", "control.cdn_hosts[0].base_url", "bare origin"),
        ("[control]\ncdn_hosts = [{ name = \"\", base_url = \"https://cdn.example\" }]\n", "control.cdn_hosts[0].name", "must not be empty"),
        (
            "[control]\ncdn_hosts = [{ name = \"a\", base_url = \"https://a.example\" }, { name = \"a\", base_url = \"https://b.example\" }]\n",
            "control.cdn_hosts[1].name",
            "used twice",
        ),
        ("[control]\nbasic_max_height = 0\n", "control.basic_max_height", "out of range"),
        ("[control]\nlogin_failures_per_account = 0\n", "control.login_failures_per_account", "out of range"),
        ("[control]\nlogin_failures_per_address = -1\n", "control.login_failures_per_address", "out of range"),
        ("[control]\nlogin_window = \"soon\"\n", "control.login_window", "invalid duration"),
        ("[control]\nregistrations_per_address = 0\n", "control.registrations_per_address", "out of range"),
        ("[control]\nregistration_window = \"0s\"\n", "control.registration_window", "out of range"),
        ("[control]\nregistration_window = \"30d\"\n", "control.registration_window", "out of range"),
        ("[control]\ndatabase = \"mysql://edge:pw@127.0.0.1/edge\"\n", "control.database", "mysql:// scheme is not supported"),
        ("[control]\ndatabase = \"postgres://edge@127.0.0.1:port/edge\"\n", "control.database", "not a valid PostgreSQL URL"),
        ("[control]\ndatabase = \"\"\n", "control.database", "must not be empty"),
    ];
    for (i, (text, key, reason)) in cases.iter().enumerate() {
        let text = if i == 0 {
            format!("{text}{POOL}")
        } else {
            format!("{tokens}{text}{POOL}")
        };
        let err = parse(&text).expect_err(&text);
        assert_eq!(&err.key, key, "{text}: {err}");
        assert!(err.reason.contains(reason), "{text}: {err}");
    }
}

#[test]
fn origin_idle_timeout_defaults_below_node_and_apache_and_names_its_key() {
    assert_eq!(
        parse(POOL).unwrap().origins[0].idle_timeout,
        Duration::from_secs(4)
    );
    assert_eq!(
        parse(&format!("{POOL}idle_timeout = \"1500ms\"\n"))
            .unwrap()
            .origins[0]
            .idle_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(
        parse(&format!("{POOL}idle_timeout = \"0s\"\n"))
            .unwrap()
            .origins[0]
            .idle_timeout,
        Duration::ZERO
    );
    for (value, reason) in [
        ("\"soon\"", "invalid duration"),
        ("\"2h\"", "longer than 1h"),
        ("4", "invalid type"),
    ] {
        let err = parse(&format!("{POOL}idle_timeout = {value}\n")).unwrap_err();
        assert!(err.key.starts_with("origins[0]"), "{value}: {err}");
        assert!(err.reason.contains(reason), "{value}: {err}");
    }
    let err = parse(&format!("{POOL}idle_timeout = \"soon\"\n")).unwrap_err();
    assert_eq!(err.key, "origins[0].idle_timeout");
}

#[test]
fn cloudfront_keys_are_checked_and_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.key"), "ab".repeat(32)).unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudfront");
    let text = |cf: &str| {
        format!(
            "{POOL}[tokens]\nkeys = [{{ id = \"k\", secret_file = \"k.key\" }}]\n[tokens.cloudfront]\n{cf}"
        )
    };
    let load = |cf: &str| Config::parse(&text(cf), dir.path()).and_then(|c| c.resolve());
    let ok = load(&format!(
        "keys = [{{ id = \"K2A\", public_key_file = \"{fixtures}/test-public.pem\" }}, {{ id = \"K2B\", public_key_file = \"{fixtures}/other-public.pem\" }}]"
    ))
    .unwrap();
    let keys = ok.tokens.unwrap().cloudfront.unwrap();
    assert_eq!(keys.ids().collect::<Vec<_>>(), ["K2A", "K2B"]);
    for (cf, key, reason) in [
        ("keys = []", "tokens.cloudfront.keys", "at least one key"),
        (
            "keys = [{ id = \"a b\", public_key_file = \"x.pem\" }]",
            "tokens.cloudfront.keys[0].id",
            "[A-Za-z0-9_-]",
        ),
        (
            "keys = [{ id = \"K\", public_key_file = \"x.pem\" }, { id = \"K\", public_key_file = \"y.pem\" }]",
            "tokens.cloudfront.keys[1].id",
            "duplicate",
        ),
        (
            "keys = [{ id = \"K\", public_key_file = \"missing.pem\" }]",
            "tokens.cloudfront.keys[0].public_key_file",
            "cannot read",
        ),
        (
            "keys = [{ id = \"K\", public_key_file = \"k.key\" }]",
            "tokens.cloudfront.keys[0].public_key_file",
            "PUBLIC KEY",
        ),
    ] {
        let err = load(cf).unwrap_err();
        assert_eq!(err.key, key, "{cf}: {err}");
        assert!(err.reason.contains(reason), "{cf}: {err}");
    }
    let short = load(&format!(
        "keys = [{{ id = \"K\", public_key_file = \"{fixtures}/rsa1024-public.pem\" }}]"
    ))
    .unwrap_err();
    assert!(short.reason.contains("1024 bits"), "{short}");
    let err = load("keys = [{ id = \"K\" }]").unwrap_err();
    assert!(err.reason.contains("public_key_file"), "{err}");
}
