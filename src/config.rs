//! One `Config`, with every default in one place (`Config::default`).
//!
//! Sources, highest first: command-line flags, `CASTBRICK_*` environment variables, the optional
//! TOML file (`--config`), the defaults. Units are in the field names. `validate` runs at start-up
//! so a bad value stops the server before it listens. Secrets never appear in `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// Resolved configuration of one server.
#[derive(Clone)]
pub struct Config {
    /// Address of the main listener.
    pub listen: SocketAddr,
    /// Optional separate listener for `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: Option<SocketAddr>,
    /// API keys accepted on `/push/tokens` and `/push/publish` (and the operator endpoints).
    pub api_keys: Vec<String>,
    /// HS256 secrets: tokens are signed with the first and verified with any.
    pub signing_secrets: Vec<String>,
    /// Where generated keys live (owner-only permissions).
    pub data_dir: PathBuf,
    /// Longest silence on a stream before a comment heartbeat is sent.
    pub heartbeat_interval_secs: u64,
    /// Events retained per channel for Last-Event-ID replay (0 turns replay off).
    pub replay_capacity: usize,
    /// Oldest event kept for replay.
    pub replay_max_age_secs: u64,
    /// Cap on all retained events together (frame bytes plus bookkeeping).
    pub replay_max_bytes: usize,
    /// Largest request body (and so the largest publishable event).
    pub max_body_bytes: usize,
    /// Bytes queued for one stream before it is disconnected as a slow consumer.
    pub max_queue_bytes: usize,
    /// Channels one token may carry.
    pub max_channels_per_token: usize,
    /// Longest token accepted and issued, in bytes.
    pub max_token_bytes: usize,
    /// Largest `ttlSeconds` accepted by `/push/tokens`.
    pub max_token_ttl_secs: u64,
    /// Origins allowed to open streams from browsers; `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Hub shards (fan-out tasks); 0 means one per CPU core.
    pub shards: usize,
    /// Serve the Developer Console at `/console`.
    pub console_enabled: bool,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The spec's default token lifetime.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
/// Shortest signing secret accepted.
pub const MIN_SECRET_BYTES: usize = 32;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            admin_listen: None,
            api_keys: Vec::new(),
            signing_secrets: Vec::new(),
            data_dir: PathBuf::from("castbrick-data"),
            heartbeat_interval_secs: 15,
            replay_capacity: 1000,
            replay_max_age_secs: 300,
            replay_max_bytes: 256 << 20,
            max_body_bytes: 64 << 10,
            max_queue_bytes: 4 << 20,
            max_channels_per_token: 64,
            max_token_bytes: 4096,
            max_token_ttl_secs: 86_400,
            cors_allowed_origins: vec!["*".into()],
            shards: 0,
            console_enabled: true,
            log_format: LogFormat::Text,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Vec<String>| format!("[{} redacted]", v.len());
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("api_keys", &redacted(&self.api_keys))
            .field("signing_secrets", &redacted(&self.signing_secrets))
            .field("data_dir", &self.data_dir)
            .field("heartbeat_interval_secs", &self.heartbeat_interval_secs)
            .field("replay_capacity", &self.replay_capacity)
            .field("replay_max_age_secs", &self.replay_max_age_secs)
            .field("replay_max_bytes", &self.replay_max_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_channels_per_token", &self.max_channels_per_token)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("max_token_ttl_secs", &self.max_token_ttl_secs)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("shards", &self.shards)
            .field("console_enabled", &self.console_enabled)
            .field("log_format", &self.log_format)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("config file {path}: {source}")]
    File {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    /// Checks ranges and relations; called before the server listens.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.api_keys.is_empty() || self.api_keys.iter().any(|k| k.len() < 16) {
            return bad("at least one API key of 16 or more characters is required".into());
        }
        if self.signing_secrets.is_empty()
            || self
                .signing_secrets
                .iter()
                .any(|s| s.len() < MIN_SECRET_BYTES)
        {
            return bad(format!(
                "signing secrets must be at least {MIN_SECRET_BYTES} bytes each"
            ));
        }
        if !(1..=300).contains(&self.heartbeat_interval_secs) {
            return bad("heartbeat_interval_secs must be 1..=300".into());
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 64 << 20 {
            return bad("max_body_bytes must be 1 KiB..=64 MiB".into());
        }
        if self.max_queue_bytes < 2 * self.max_body_bytes {
            return bad("max_queue_bytes must be at least twice max_body_bytes".into());
        }
        if self.max_channels_per_token == 0 || self.max_token_bytes < 512 {
            return bad("max_channels_per_token must be >= 1 and max_token_bytes >= 512".into());
        }
        if self.max_token_ttl_secs == 0 {
            return bad("max_token_ttl_secs must be >= 1".into());
        }
        if self.cors_allowed_origins.is_empty() {
            return bad("cors_allowed_origins must not be empty (use * for any)".into());
        }
        Ok(())
    }

    /// Number of hub shards to run.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// True if browsers from `origin` may open streams.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.cors_allowed_origins
            .iter()
            .any(|o| o == "*" || o == origin)
    }

    /// Fills in missing API key and signing secret from the data directory, creating random ones
    /// (mode 0600, directory 0700) on first start. Returns the generated key, if one was created
    /// or loaded, so the banner can print it.
    pub fn ensure_secrets(&mut self) -> Result<Option<String>, ConfigError> {
        let mut shown = None;
        if self.api_keys.is_empty() {
            let key = load_or_create(&self.data_dir, "api-key", || {
                format!("cb_live_{}", random_hex(24))
            })?;
            shown = Some(key.clone());
            self.api_keys.push(key);
        }
        if self.signing_secrets.is_empty() {
            self.signing_secrets
                .push(load_or_create(&self.data_dir, "signing-secret", || {
                    random_hex(32)
                })?);
        }
        Ok(shown)
    }
}

/// Lowercase hex of `n` random bytes from the OS.
pub fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("OS randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn load_or_create(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<String, ConfigError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let err = |source| ConfigError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let value = make();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    std::io::Write::write_all(&mut f, format!("{value}\n").as_bytes()).map_err(err)?;
    Ok(value)
}

/// Command-line flags and environment variables. Every field is optional so that the TOML file
/// and then `Config::default` can fill what is not given.
#[derive(Parser, Debug, Default)]
#[command(
    name = "castbrick-push",
    version,
    about = "CastBrick Push: publish JSON events to channels, receive them over Server-Sent Events.",
    long_about = "CastBrick Push: publish JSON events to channels, receive them over Server-Sent Events.\n\n\
Every option can also be set by its environment variable or in the TOML file given with --config \
(keys are the long option names with '_' for '-'). Flags win over the environment, which wins over the file.\n\
With no API key or signing secret configured, random ones are created in the data directory on first start \
and the API key is printed in the start banner."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "CASTBRICK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "CASTBRICK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Separate listener for /metrics, /healthz and /readyz [default: served on --listen].
    #[arg(long, env = "CASTBRICK_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// API keys, comma-separated (at least 16 characters each) [default: generated in the data dir].
    #[arg(
        long,
        env = "CASTBRICK_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Option<Vec<String>>,
    /// Token signing secrets, comma-separated, >= 32 bytes each; sign with the first, verify with all
    /// [default: generated in the data dir].
    #[arg(
        long,
        env = "CASTBRICK_SIGNING_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub signing_secrets: Option<Vec<String>>,
    /// Directory for generated secrets [default: ./castbrick-data].
    #[arg(long, env = "CASTBRICK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Longest silence on a stream before a heartbeat comment is sent, 1..=300 [default: 15].
    #[arg(long, env = "CASTBRICK_HEARTBEAT_INTERVAL_SECS")]
    pub heartbeat_interval_secs: Option<u64>,
    /// Events kept per channel for Last-Event-ID replay; 0 disables replay [default: 1000].
    #[arg(long, env = "CASTBRICK_REPLAY_CAPACITY")]
    pub replay_capacity: Option<usize>,
    /// Oldest event kept for replay, in seconds [default: 300].
    #[arg(long, env = "CASTBRICK_REPLAY_MAX_AGE_SECS")]
    pub replay_max_age_secs: Option<u64>,
    /// Memory cap for all retained events together, in bytes [default: 268435456].
    #[arg(long, env = "CASTBRICK_REPLAY_MAX_BYTES")]
    pub replay_max_bytes: Option<usize>,
    /// Largest request body, and so the largest event, in bytes [default: 65536].
    #[arg(long, env = "CASTBRICK_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bytes queued for one stream before it is cut as a slow consumer [default: 4194304].
    #[arg(long, env = "CASTBRICK_MAX_QUEUE_BYTES")]
    pub max_queue_bytes: Option<usize>,
    /// Most channels in one token [default: 64].
    #[arg(long, env = "CASTBRICK_MAX_CHANNELS_PER_TOKEN")]
    pub max_channels_per_token: Option<usize>,
    /// Longest token issued or accepted, in bytes [default: 4096].
    #[arg(long, env = "CASTBRICK_MAX_TOKEN_BYTES")]
    pub max_token_bytes: Option<usize>,
    /// Largest ttlSeconds accepted by /push/tokens [default: 86400].
    #[arg(long, env = "CASTBRICK_MAX_TOKEN_TTL_SECS")]
    pub max_token_ttl_secs: Option<u64>,
    /// Origins allowed to open streams from browsers, comma-separated, or * [default: *].
    #[arg(long, env = "CASTBRICK_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Hub shards (fan-out tasks); 0 = one per CPU core [default: 0].
    #[arg(long, env = "CASTBRICK_SHARDS")]
    pub shards: Option<usize>,
    /// Serve the Developer Console at /console [default: true].
    #[arg(long, env = "CASTBRICK_CONSOLE_ENABLED")]
    pub console_enabled: Option<bool>,
    /// Log format [default: text].
    #[arg(long, env = "CASTBRICK_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// The TOML file: same keys as the long flags, with `_`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    api_keys: Option<Vec<String>>,
    signing_secrets: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    heartbeat_interval_secs: Option<u64>,
    replay_capacity: Option<usize>,
    replay_max_age_secs: Option<u64>,
    replay_max_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    max_queue_bytes: Option<usize>,
    max_channels_per_token: Option<usize>,
    max_token_bytes: Option<usize>,
    max_token_ttl_secs: Option<u64>,
    cors_allowed_origins: Option<Vec<String>>,
    shards: Option<usize>,
    console_enabled: Option<bool>,
    log_format: Option<LogFormat>,
}

impl Cli {
    /// Layers flags/env over the file over the defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    source: Box::new(e),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    source: Box::new(e),
                })?
            }
            None => FileConfig::default(),
        };
        let d = Config::default();
        macro_rules! pick {
            ($f:ident) => {
                self.$f.or(file.$f).unwrap_or(d.$f)
            };
        }
        Ok(Config {
            listen: pick!(listen),
            admin_listen: self.admin_listen.or(file.admin_listen),
            api_keys: non_empty(pick!(api_keys)),
            signing_secrets: non_empty(pick!(signing_secrets)),
            data_dir: pick!(data_dir),
            heartbeat_interval_secs: pick!(heartbeat_interval_secs),
            replay_capacity: pick!(replay_capacity),
            replay_max_age_secs: pick!(replay_max_age_secs),
            replay_max_bytes: pick!(replay_max_bytes),
            max_body_bytes: pick!(max_body_bytes),
            max_queue_bytes: pick!(max_queue_bytes),
            max_channels_per_token: pick!(max_channels_per_token),
            max_token_bytes: pick!(max_token_bytes),
            max_token_ttl_secs: pick!(max_token_ttl_secs),
            cors_allowed_origins: non_empty(pick!(cors_allowed_origins)),
            shards: pick!(shards),
            console_enabled: pick!(console_enabled),
            log_format: pick!(log_format),
        })
    }
}

fn non_empty(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_which_wins_over_defaults() {
        let dir = std::env::temp_dir().join(format!("cb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "heartbeat_interval_secs = 7\nreplay_capacity = 5\n").unwrap();
        let cli = Cli::parse_from([
            "castbrick-push",
            "--config",
            file.to_str().unwrap(),
            "--replay-capacity",
            "9",
        ]);
        let c = cli.resolve().unwrap();
        assert_eq!(c.heartbeat_interval_secs, 7);
        assert_eq!(c.replay_capacity, 9);
        assert_eq!(c.max_body_bytes, Config::default().max_body_bytes);
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Config {
            api_keys: vec!["cb_live_secret_value".into()],
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("cb_live_secret_value"));
    }
}
