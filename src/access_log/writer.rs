//! The writer thread: takes finished lines off the channel and writes them to the log's
//! target, off every request path. A target that blocks (a full pipe, a slow disk, a FIFO
//! nobody reads) blocks only this thread; the channel fills and requests drop their lines.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::config::LogTarget;

/// How many lines one write takes at most before the buffer is flushed.
const BATCH: usize = 256;

/// What lines are written to now.
enum Out {
    /// Not open yet (opened when a line arrives), or `log.access = "off"`.
    Closed,
    Stdout,
    File(BufWriter<File>),
}

impl Out {
    fn open(target: &LogTarget) -> io::Result<Out> {
        Ok(match target {
            LogTarget::Off => Out::Closed,
            LogTarget::Stdout => Out::Stdout,
            LogTarget::File(path) => Out::File(BufWriter::with_capacity(
                64 * 1024,
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
        })
    }
}

/// Run until every sender is gone.
pub(super) fn run(rx: Receiver<Vec<u8>>, shared: Arc<Shared>) {
    let mut out = Out::Closed;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => batch.push(line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        if shared.reopen.swap(false, Ordering::AcqRel) {
            if let Out::File(f) = &mut out {
                let _ = f.flush();
            }
            out = Out::Closed;
        }
        if batch.is_empty() {
            continue;
        }
        if matches!(out, Out::Closed) {
            let target = shared.target();
            match Out::open(&target) {
                Ok(o) => out = o,
                Err(e) => {
                    shared.failed(&format!("cannot open {target:?}: {e}"), batch.len());
                    batch.clear();
                    continue;
                }
            }
        }
        let n = batch.len();
        let written = match &mut out {
            Out::Closed => {
                // `off` since these lines were made (a reload): dropped quietly.
                batch.clear();
                continue;
            }
            Out::Stdout => write_all(&mut io::stdout().lock(), &batch),
            Out::File(f) => write_all(f, &batch),
        };
        batch.clear();
        match written {
            Ok(()) => shared.written(n),
            Err(e) => {
                shared.failed(&format!("cannot write: {e}"), n);
                // Opened again for the next lines (the file may have been replaced).
                out = Out::Closed;
            }
        }
    }
}

fn write_all(w: &mut impl Write, batch: &[Vec<u8>]) -> io::Result<()> {
    for line in batch {
        w.write_all(line)?;
    }
    w.flush()
}
