//! The `ferrule` command: a self-hosted, AWS-IoT-compatible device gateway in one binary.
//!
//! This crate is the composition root: it parses flags, environment and the config file into
//! typed settings, sets up logging and metrics, and wires the broker, the store and the TLS
//! material together. Only here do errors become `anyhow`.

mod control;
mod demo;
mod events;
mod functions;
mod mqtt_client;
mod pki_cmd;
mod serve;
mod settings;
mod status;

use clap::{Parser, Subcommand};

/// Ferrule: an MQTT 3.1.1/5.0 broker with AWS IoT's device-identity and control-plane model.
#[derive(Debug, Parser)]
#[command(name = "ferrule", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: MQTT listeners, the control-plane API and metrics.
    Serve(Box<settings::ServeArgs>),
    /// Run the whole just-in-time registration workflow in-process, step by step: the first
    /// thing to try.
    Demo(demo::DemoArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A CA for device certificates: create it, register it (for just-in-time registration).
    #[command(subcommand)]
    Ca(pki_cmd::CaCommand),
    /// Device certificates signed by a CA made with `ferrule ca create`.
    #[command(subcommand)]
    Device(pki_cmd::DeviceCommand),
    /// What a running Ferrule is doing: listeners, connected clients, certificates by status.
    Status(status::StatusArgs),
    /// Follow the broker's events: registrations, connections, subscriptions, refusals.
    Events(events::EventsArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a documented configuration file with every key at its default.
    Default,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Demo(args) => demo::run(args),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", settings::DEFAULT_CONFIG);
            Ok(())
        }
        Command::Ca(command) => pki_cmd::run_ca(command),
        Command::Device(command) => pki_cmd::run_device(command),
        Command::Status(args) => status::run(&args),
        Command::Events(args) => events::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrule: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
