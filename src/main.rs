#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc rather than glibc's malloc: a hot HTTP/2 hit allocates and frees a few dozen small
/// blocks (header maps, frames, per-stream state) and glibc's allocator took ~13 % of the
/// edge's CPU in that profile (`loadtest/perf-edge-h2-hot_playlist.txt`). Paired runs of
/// `loadtest/compare_tls.sh`: +6 to +13 % requests per CPU-second on hot hits. Built without
/// transparent huge pages (`no_thp`): with them the resident set grew by ~30 MiB at start.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    edge::cli::run(edge::cli::Cli::parse())
}
