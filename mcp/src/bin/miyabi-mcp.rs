//! `miyabi-mcp`: the same as `miyabi mcp` (serve a run database over MCP, on stdio or
//! Streamable HTTP), as a binary of its own.

use clap::Parser;
use miyabi_mcp::cli::{McpArgs, init_logging, run, runtime};

/// Command line of `miyabi-mcp`.
#[derive(Parser)]
#[command(
    name = "miyabi-mcp",
    version,
    about = "Serve Miyabi runs and approvals over MCP"
)]
struct Cli {
    /// The run database (SQLite file).
    #[arg(long, env = "MIYABI_DB", default_value = "./miyabi.db")]
    db: String,
    #[command(flatten)]
    mcp: McpArgs,
}

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let args = McpArgs {
        db: cli.db,
        ..cli.mcp
    };
    let served = runtime(&args).and_then(|rt| rt.block_on(run(args)));
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miyabi-mcp: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
