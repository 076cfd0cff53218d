//! The `dicke` command line: a thin clap layer over the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dicke::backend::{self, BackendChoice};
use dicke::run::{self, RunOptions};
use dicke::task::checkpoint::Shard;

mod cli_progress;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "dicke", version, about = "Driven-dissipative collective spin systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario file and write observables.csv, result.json and plot.png.
    Run {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// Output directory (default: out/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Compute backend: auto (a real GPU where the task has a kernel, else the CPU), cpu
        /// or gpu.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Override a scalar: a model parameter (N, Omega, ...), a variable, or a dotted key
        /// (task.t_end). Repeatable. Values may be expressions: --set Omega="0.5*Omega_c".
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Memory limit of one request, MiB (default: DICKE_MEMORY_LIMIT_MIB, else 80 % of the
        /// machine's memory). Requests estimated above it are refused before they run.
        #[arg(long = "memory-limit", value_name = "MIB")]
        memory_limit: Option<u64>,
        /// Continue the newest unfinished run of this scenario in the output directory
        /// (interrupted, killed, failed) from its checkpoint; without one, start afresh.
        #[arg(long)]
        resume: bool,
        /// Run shard k of n (k = 0 .. n-1) of an ensemble, sweep or scan; default from
        /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT in a Slurm job array. Combine the
        /// shards' directories with `dicke merge`.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
    },
    /// Merge the output directories of the shards of one run (`dicke run --shard k/n`) into
    /// the files of that run.
    Merge {
        /// The shards' output directories (all n of them).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output directory of the merged run.
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the version, CPU threads and the wgpu adapters found.
    Info,
}

/// Exit status of a run stopped by SIGINT/SIGTERM (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: i32 = 130;

fn main() {
    install_interrupt_handler();
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        let interrupted = e
            .chain()
            .any(|c| matches!(c.downcast_ref(), Some(dicke::error::Error::Interrupted { .. })));
        std::process::exit(if interrupted { EXIT_INTERRUPTED } else { 1 });
    }
}

/// SIGINT/SIGTERM (and SIGHUP): the first asks the run to stop at the next unit of work and
/// keep what it finished ([`dicke::interrupt`]); a second exits at once (a later `--resume`
/// still finds the finished units).
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if dicke::interrupt::requested() {
            eprintln!("\nsecond interrupt: exiting now (finished units are kept; --resume continues)");
            std::process::exit(EXIT_INTERRUPTED);
        }
        dicke::interrupt::request();
        eprintln!(
            "\ninterrupt: finishing the current unit of work and keeping what is done (again to exit now)"
        );
    });
}

/// `--shard k/n`, else the Slurm job array's shard, else none.
fn shard(flag: Option<&str>) -> Result<Option<Shard>> {
    Ok(match flag {
        Some(text) => Some(Shard::parse(text)?),
        None => Shard::from_slurm(|k| std::env::var(k).ok())?,
    })
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            out,
            backend,
            set,
            memory_limit,
            resume,
            shard: shard_flag,
        } => {
            if let Some(mib) = memory_limit {
                dicke::task::memory::set_memory_limit_mib(mib);
            }
            let sc = dicke::scenario::load(&scenario, &set)?;
            let out_dir = out.unwrap_or_else(|| {
                let stem = scenario.file_stem().map(|s| s.to_string_lossy().to_string());
                PathBuf::from("out").join(stem.unwrap_or_else(|| "run".into()))
            });
            if out_dir.exists() && !out_dir.is_dir() {
                return Err(dicke::error::InputError::invalid(
                    "--out",
                    out_dir.display(),
                    "a directory (this path names an existing file)",
                )
                .into());
            }
            let opts = RunOptions {
                out_dir,
                backend,
                overrides: set,
                resume,
                shard: shard(shard_flag.as_deref())?,
            };
            let summary = run::execute(&sc, &opts, &mut cli_progress::CliProgress::default())
                .with_context(|| format!("running {}", scenario.display()))?;
            for note in &summary.notes {
                eprintln!("note: {note}");
            }
            if summary.backend.note != "requested" {
                eprintln!("backend: {} ({})", summary.backend.name, summary.backend.note);
            }
            println!(
                "{}: {} on {} in {:.2} s -> {}",
                scenario.display(),
                summary.result["task"].as_str().unwrap_or(""),
                summary.backend.name,
                summary.wall_s,
                summary.out_dir.display()
            );
            println!("results: {}", summary.result["results"]);
            println!("files: {}", summary.files.join(", "));
        }
        Command::Merge { dirs, out } => {
            let summary = run::merge(&dirs, &out, &mut cli_progress::CliProgress::default())?;
            for note in &summary.notes {
                eprintln!("note: {note}");
            }
            println!(
                "merged {} shards: {} -> {}",
                dirs.len(),
                summary.result["task"].as_str().unwrap_or(""),
                summary.out_dir.display()
            );
            println!("results: {}", summary.result["results"]);
            println!("files: {}", summary.files.join(", "));
        }
        Command::Info => {
            println!("dicke {}", dicke::VERSION);
            println!("cpu threads: {}", rayon::current_num_threads());
            let adapters = backend::adapters();
            if !cfg!(feature = "gpu") {
                println!("wgpu adapters: this build has no GPU support (built without the `gpu` feature)");
            } else if adapters.is_empty() {
                println!("wgpu adapters: none found (the CPU backend is used)");
            }
            for a in adapters {
                println!(
                    "wgpu adapter: {} | type {} | backend {} | driver {} | f64 {}",
                    a.name,
                    a.device_type,
                    a.backend,
                    a.driver,
                    if a.shader_f64 { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(())
}
