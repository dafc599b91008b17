//! `castbrick-push`: parses configuration, sets up logging, prints the banner and runs the
//! server until SIGINT/SIGTERM.

use clap::Parser;
use mimalloc::MiMalloc;

use castbrick_push::config::{Cli, LogFormat};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut config = match cli.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("castbrick-push: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CASTBRICK_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let generated_key = match config.ensure_secrets() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("castbrick-push: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = config.validate() {
        eprintln!("castbrick-push: {e}");
        return std::process::ExitCode::from(2);
    }
    let nofile = castbrick_push::server::raise_nofile_limit();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match castbrick_push::server::bind(config.listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("castbrick-push: cannot listen on {}: {e} (choose another address with --listen or CASTBRICK_LISTEN)", config.listen);
                return std::process::ExitCode::from(1);
            }
        };
        let addr = listener.local_addr().expect("bound address");
        print_banner(addr, generated_key.as_deref(), &config, nofile);
        match castbrick_push::run(listener, config, castbrick_push::shutdown::signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("castbrick-push: {e}");
                std::process::ExitCode::from(1)
            }
        }
    })
}

fn print_banner(
    addr: std::net::SocketAddr,
    key: Option<&str>,
    config: &castbrick_push::Config,
    nofile: u64,
) {
    use std::io::Write;
    let base = format!("http://{addr}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "CastBrick Push {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "listening on {base}");
    let _ = writeln!(
        out,
        "open-files limit {nofile}, {} hub shards",
        config.shard_count()
    );
    match key {
        Some(k) => {
            let _ = writeln!(
                out,
                "API key (stored in {}): {k}",
                config.data_dir.display()
            );
            let _ = writeln!(out, "try it:");
            let _ = writeln!(out, "  export KEY={k}");
        }
        None => {
            let _ = writeln!(
                out,
                "API keys: {} configured (CASTBRICK_API_KEYS)",
                config.api_keys.len()
            );
            let _ = writeln!(out, "try it (with one of your keys in $KEY):");
        }
    }
    let _ = writeln!(
        out,
        "  TOKEN=$(curl -s -X POST {base}/push/tokens -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' -d '{{\"channels\":[\"orders\"]}}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')"
    );
    let _ = writeln!(out, "  curl -N \"{base}/push/stream?token=$TOKEN\"");
    let _ = writeln!(
        out,
        "  curl -X POST {base}/push/publish -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' -d '{{\"channel\":\"orders\",\"event\":\"order.created\",\"data\":{{\"orderId\":\"abc123\"}}}}'"
    );
    match config.admin_listen {
        Some(admin) => {
            let _ = writeln!(
                out,
                "metrics, healthz, readyz: http://{admin}/metrics (admin listener)"
            );
        }
        None => {
            let _ = writeln!(out, "metrics: {base}/metrics");
        }
    }
    if config.console_enabled {
        let _ = writeln!(out, "Developer Console: {base}/console");
    }
    let _ = out.flush();
}
