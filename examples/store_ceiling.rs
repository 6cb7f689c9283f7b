//! How many durable creates per second the storage layer allows on this
//! machine, with no HTTP in front of it: the ceiling `bench/run.sh`'s
//! `publish` row can be read against.
//!
//! ```text
//! cargo run --release --example store_ceiling -- [store|sled] [writers] [seconds] [keys] [--json]
//! ```
//!
//! - `store` (the default): livefeed's store as the server uses it (the
//!   group-commit writer thread, every index, the fsync), with `writers`
//!   concurrent creates in flight, as the benchmark's publishers keep.
//! - `sled`: sled 0.34 alone, in batches of `writers` posts, one flush and
//!   one `fdatasync` per batch: what the storage engine allows. Each post is
//!   `keys` keys (default 1): its JSON under its id, and `keys - 1` small
//!   index entries (livefeed's create writes 2: the post and its feed's
//!   listing).
//!
//! Both run in a fresh temporary directory on the disk of the working
//! directory, as the server's `./data` would. Each prints its rate and the
//! process's CPU time per post; `--json` prints them as one result line for
//! `bench/run.sh --ceiling`.

use livefeed::feed::name::FeedName;
use livefeed::feed::post::NewPost;
use livefeed::feed::publish::Publisher;
use livefeed::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let json = all.iter().any(|a| a == "--json");
    let mut args = all.into_iter().filter(|a| a != "--json");
    let mode = args.next().unwrap_or_else(|| "store".into());
    let writers: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let seconds: f64 = args.next().map_or(Ok(5.0), |a| a.parse())?;
    let keys: u8 = args.next().map_or(Ok(1), |a| a.parse())?;
    let run = Duration::from_secs_f64(seconds);
    let dir = tempfile::tempdir_in(".")?;
    let cpu_before = cpu_seconds()?;
    let (posts, elapsed) = match mode.as_str() {
        "store" => store(dir.path(), writers, run)?,
        "sled" => sled_alone(dir.path(), writers, run, keys)?,
        other => anyhow::bail!("unknown mode {other}: store or sled"),
    };
    let cpu_us_per_post = (cpu_seconds()? - cpu_before) * 1e6 / posts.max(1) as f64;
    let rate = posts as f64 / elapsed.as_secs_f64();
    let shape = match mode.as_str() {
        "sled" => format!("{keys} key(s) a post"),
        _ => "livefeed's keys".to_owned(),
    };
    if json {
        let line = serde_json::json!({
            "mode": mode, "writers": writers, "keys": keys, "posts_ok": posts,
            "posts_per_sec": rate, "cpu_us_per_post": cpu_us_per_post, "ok": true,
        });
        println!("{line}");
    } else {
        println!(
            "{mode}: {writers} writers, {shape}, {posts} posts in {elapsed:.2?}: {rate:.0} posts/s, \
             {cpu_us_per_post:.1} µs of CPU a post"
        );
    }
    Ok(())
}

/// This process's user + system CPU time so far (Linux: `/proc/self/stat`,
/// in clock ticks of 1/100 s).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| -> anyhow::Result<f64> {
        Ok(rest
            .split_whitespace()
            .nth(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/self/stat"))?
            .parse()?)
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok((field(11)? + field(12)?) / 100.0)
}

fn body(n: u64) -> String {
    // The size of the benchmark's posts.
    format!(
        r#"{{"title":"bench {n}","content":"lfb|{n}|1764640000000000|","author":"livefeed-bench"}}"#
    )
}

fn store(dir: &std::path::Path, writers: usize, run: Duration) -> anyhow::Result<(u64, Duration)> {
    let store = Store::open(dir)?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    async_std::task::block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                let done = done.clone();
                async_std::task::spawn(async move {
                    let mut n = w as u64;
                    while started.elapsed() < run {
                        let post = NewPost::from_json(FeedName::main(), body(n).as_bytes())
                            .expect("a valid post");
                        store.create(post, None).await.expect("stored");
                        done.fetch_add(1, Ordering::Relaxed);
                        n += writers as u64;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
    let elapsed = started.elapsed();
    store.close()?;
    Ok((done.load(Ordering::Relaxed), elapsed))
}

fn sled_alone(
    dir: &std::path::Path,
    batch: usize,
    run: Duration,
    keys: u8,
) -> anyhow::Result<(u64, Duration)> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(64 << 20)
        .open()?;
    let tree = db.open_tree("posts")?;
    let data = std::fs::File::open(dir.join("db"))?;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run {
        let mut writes = sled::Batch::default();
        for _ in 0..batch {
            n += 1;
            writes.insert(&n.to_be_bytes(), body(n).as_bytes());
            for index in 1..keys {
                let mut key = vec![index];
                key.extend_from_slice(&n.to_be_bytes());
                writes.insert(key, &[]);
            }
        }
        tree.apply_batch(writes)?;
        db.flush()?;
        data.sync_data()?;
    }
    Ok((n, started.elapsed()))
}
