fn main() {
    let cli = vtep::cli::parse();
    // The daemon logs at info by default, the CLI only warnings.
    let level = match cli.command {
        Some(vtep::cli::Command::Run { .. }) => "info",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_target(false)
        .init();
    if let Err(e) = vtep::cli::main(cli) {
        eprintln!("vtep: error: {e:#}");
        std::process::exit(1);
    }
}
