//! `outcall-sandbox [serve]` runs the stand-ins; `outcall-sandbox keys`
//! prints the Supabase API keys derived from SUPABASE_JWT_SECRET.

use std::process::ExitCode;

use outcall_sandbox::jwt::{ApiKeys, AuthKeys};
use outcall_sandbox::{log, Config};

const USAGE: &str = "usage: outcall-sandbox [serve | keys]
  serve  (default) run the Twilio, VAPI, pg_net and /rest/v1 stand-ins
  keys   print SUPABASE_ANON_KEY=..., SUPABASE_SERVICE_ROLE_KEY=... and SUPABASE_JWKS='...' (PostgREST's
         jwt-secret: the legacy secret and the users' ES256 key) for SUPABASE_JWT_SECRET
See sandbox/README.md for the environment variables.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["serve"] => serve(),
        ["keys"] => keys(),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn keys() -> ExitCode {
    match std::env::var("SUPABASE_JWT_SECRET").ok().filter(|s| !s.trim().is_empty()) {
        Some(secret) => {
            let keys = ApiKeys::derive(secret.trim());
            println!("SUPABASE_ANON_KEY={}", keys.anon);
            println!("SUPABASE_SERVICE_ROLE_KEY={}", keys.service_role);
            // Single-quoted for the shell: the JSON holds no single quote (base64url, hex and fixed names).
            println!("SUPABASE_JWKS='{}'", AuthKeys::derive(secret.trim()).postgrest_jwks());
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("outcall-sandbox: SUPABASE_JWT_SECRET is not set (the secret PostgREST verifies JWTs with)");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("outcall-sandbox: invalid configuration:\n{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("outcall-sandbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(outcall_sandbox::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!(error, "sandbox", "server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
