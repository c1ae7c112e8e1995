use clap::Parser;
use plugboard::{Application, Settings};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let settings = Settings::parse();
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();

    if let Some(plugboard::settings::Command::CreateAdmin { email, name }) = &settings.command {
        let password = match std::env::var("PLUGBOARD_ADMIN_PASSWORD") {
            Ok(p) => p,
            Err(_) => {
                let mut line = String::new();
                if std::io::stdin().read_line(&mut line).is_err() {
                    eprintln!("plugboard: cannot read the password from standard input");
                    return std::process::ExitCode::FAILURE;
                }
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
        };
        return match plugboard::create_admin(&settings, email, name, &password) {
            Ok(message) => {
                println!("{message}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("plugboard: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let app = match Application::build(&settings) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!("Plugboard is listening on http://{}", app.addr());
    match app.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server stopped: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
