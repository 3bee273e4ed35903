//! The command line of the `herald-load` binary, turned into a config and a source.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Parser, ValueEnum};
use hyper::http::HeaderMap;

use crate::{
    FixedGet, LoadConfig, LoadError, Mode, RequestSource, Target, TemplatePost, parse_header,
};

/// Drives a local HTTP server with a fixed request, at a fixed concurrency or rate.
#[derive(Debug, Parser)]
#[command(name = "herald-load", version)]
#[command(group(ArgGroup::new("pacing").required(true).args(["connections", "rate"])))]
pub struct Cli {
    /// Target URL; only 127.0.0.1, localhost and [::1] are accepted.
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum, default_value_t = HttpMethod::Get)]
    pub method: HttpMethod,
    /// JSON body template for POST; each `n` in curly braces becomes the sequence number.
    // clap renders a literal brace-n-brace in help text as a line break, hence the wording.
    #[arg(long, required_if_eq("method", "POST"))]
    pub body: Option<String>,
    /// Extra header as `name: value`; repeatable.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Closed loop with this many connections.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Open loop at this many requests per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Most connections the open loop may open.
    #[arg(long, default_value_t = 256, requires = "rate")]
    pub max_connections: usize,
    /// Length of the measured window, e.g. `10s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Traffic before the measured window, excluded from every figure.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum HttpMethod {
    Get,
    Post,
}

impl Cli {
    /// Validates the arguments into what [`crate::run_load`] takes.
    pub fn into_run(self) -> Result<(LoadConfig, Arc<dyn RequestSource>), LoadError> {
        let target = Target::parse(&self.url)?;
        let mut headers = HeaderMap::new();
        for line in &self.headers {
            let (name, value) = parse_header(line)?;
            headers.append(name, value);
        }
        let path = target.path_and_query();
        let source: Arc<dyn RequestSource> = match (self.method, &self.body) {
            (HttpMethod::Get, _) => Arc::new(FixedGet::new(path, headers)),
            (HttpMethod::Post, body) => Arc::new(TemplatePost::new(
                path,
                headers,
                body.as_deref().unwrap_or("{}"),
            )?),
        };
        let mode = match (self.connections, self.rate) {
            (Some(connections), _) => Mode::Closed { connections },
            (None, Some(rate)) => Mode::Open {
                rate,
                max_connections: self.max_connections,
            },
            (None, None) => {
                return Err(LoadError::InvalidConfig(
                    "either --connections or --rate is needed",
                ));
            }
        };
        let config = LoadConfig {
            target,
            mode,
            warmup: self.warmup,
            duration: self.duration,
        };
        Ok((config, source))
    }
}
