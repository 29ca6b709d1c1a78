//! An export's zip, written as it is collected: the collector hands over one file at a time
//! ([`Files`]), [`write`] compresses each into the zip (deflate) and hands the zip on in pieces,
//! which the vault seals as they come. Neither the whole export nor the whole zip is ever held.
//!
//! The `zip` crate writes a file's header, then its data, then seeks back into that header to
//! fill in the sizes and CRC; it never seeks before the file it is writing. [`Spool`] is a writer
//! that allows exactly that: it keeps the bytes from the current file's start and gives out
//! everything before it once the next file starts. Memory is one file's JSON and its compressed
//! bytes (plus the pieces in flight), whatever the export's size.

use std::cell::RefCell;
use std::io::{self, Seek, SeekFrom, Write};
use std::rc::Rc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// One file of an export: its path in the zip and its bytes.
#[derive(Debug)]
pub struct ExportFile {
    /// Its path in the zip.
    pub name: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// Where a collector puts an export's files, in order. Dropping it ends the zip.
pub struct Files(mpsc::Sender<ExportFile>);

/// The collector's end and the zip writer's end of an export's files. One file waits at a time:
/// a collector never reads far ahead of the compression.
pub fn channel() -> (Files, mpsc::Receiver<ExportFile>) {
    let (tx, rx) = mpsc::channel(1);
    (Files(tx), rx)
}

impl Files {
    /// Adds `value` as the pretty-printed JSON file `name`; fails once the zip stopped.
    pub async fn json(
        &self,
        name: impl Into<String>,
        value: &impl Serialize,
    ) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(value)?;
        self.0
            .send(ExportFile { name: name.into(), bytes })
            .await
            .map_err(|_| anyhow::anyhow!("the export's zip stopped"))
    }
}

/// Zips the files from `files` as they come into pieces sent to `out`, until `files` closes;
/// fails as soon as `out` is closed (whoever read it stopped). Blocking: run it off the runtime.
pub fn write(
    mut files: mpsc::Receiver<ExportFile>,
    out: mpsc::Sender<Bytes>,
) -> anyhow::Result<()> {
    let spool = Spool::default();
    let mut zip = zip::ZipWriter::new(spool.clone());
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    while let Some(file) = files.blocking_recv() {
        // Starting a file finishes the one before: nothing before `mark` is touched again.
        let mark = spool.end();
        zip.start_file(file.name, options)?;
        spool.give_out(mark, &out)?;
        zip.write_all(&file.bytes)?;
    }
    zip.finish()?;
    let end = spool.end();
    spool.give_out(end, &out)
}

/// A seekable writer that keeps only the bytes from `base` on: what came before has been given
/// out and can no longer be sought to.
#[derive(Clone, Default)]
struct Spool(Rc<RefCell<Window>>);

#[derive(Default)]
struct Window {
    /// The offset of `kept[0]` in the whole zip.
    base: u64,
    kept: Vec<u8>,
    /// The write position, in the whole zip.
    pos: u64,
}

impl Window {
    fn end(&self) -> u64 {
        self.base + self.kept.len() as u64
    }
}

impl Spool {
    /// The zip's length so far.
    fn end(&self) -> u64 {
        self.0.borrow().end()
    }

    /// Sends out the bytes before `upto`, which nothing will write or seek to again.
    fn give_out(&self, upto: u64, out: &mpsc::Sender<Bytes>) -> anyhow::Result<()> {
        let piece = {
            let mut window = self.0.borrow_mut();
            let take = usize::try_from(upto.saturating_sub(window.base))?.min(window.kept.len());
            if take == 0 {
                return Ok(());
            }
            let rest = window.kept.split_off(take);
            window.base += take as u64;
            std::mem::replace(&mut window.kept, rest)
        };
        out.blocking_send(Bytes::from(piece))
            .map_err(|_| anyhow::anyhow!("the export's sealing stopped"))
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut window = self.0.borrow_mut();
        let gone = || io::Error::other("the zip wrote into a part already given out");
        let at = window.pos.checked_sub(window.base).ok_or_else(gone)?;
        let at = usize::try_from(at).map_err(io::Error::other)?;
        let overlap = window.kept.len().saturating_sub(at).min(buf.len());
        let (over, after) = buf.split_at(overlap);
        window.kept.get_mut(at..at + overlap).ok_or_else(gone)?.copy_from_slice(over);
        window.kept.extend_from_slice(after);
        window.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Spool {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let mut window = self.0.borrow_mut();
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(by) => window.end().checked_add_signed(by),
            SeekFrom::Current(by) => window.pos.checked_add_signed(by),
        };
        match target {
            Some(at) if at >= window.base && at <= window.end() => {
                window.pos = at;
                Ok(at)
            }
            _ => Err(io::Error::other("the zip sought into a part already given out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zip_comes_out_whole_and_in_pieces() {
        let (files, incoming) = channel();
        let (out_tx, mut out_rx) = mpsc::channel(64);
        let big: Vec<u32> = (0..50_000).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let writer = std::thread::spawn(move || write(incoming, out_tx));
        runtime.block_on(async {
            files.json("a.json", &serde_json::json!({ "x": 1 })).await.unwrap();
            files.json("dir/b.json", &big).await.unwrap();
            files.json("c.json", &"last").await.unwrap();
        });
        drop(files);
        writer.join().unwrap().unwrap();
        let mut pieces = Vec::new();
        while let Ok(piece) = out_rx.try_recv() {
            pieces.push(piece);
        }
        assert!(pieces.len() >= 3, "given out as files finish, not at the end");
        let zip: Vec<u8> = pieces.concat();
        let mut archive = zip::ZipArchive::new(io::Cursor::new(zip)).unwrap();
        let names: Vec<&str> = archive.file_names().collect();
        assert_eq!(names.len(), 3);
        let mut text = String::new();
        io::Read::read_to_string(&mut archive.by_name("dir/b.json").unwrap(), &mut text).unwrap();
        assert_eq!(serde_json::from_str::<Vec<u32>>(&text).unwrap(), big);
    }

    #[test]
    fn a_stopped_reader_stops_the_writer() {
        let (files, incoming) = channel();
        let (out_tx, out_rx) = mpsc::channel(1);
        drop(out_rx);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let writer = std::thread::spawn(move || write(incoming, out_tx));
        runtime.block_on(async {
            // The writer fails at the second file (the first's bytes have nowhere to go), and
            // then takes no more.
            let mut refused = false;
            for n in 0..4 {
                if files.json(format!("{n}.json"), &n).await.is_err() {
                    refused = true;
                    break;
                }
            }
            assert!(refused);
        });
        assert!(writer.join().unwrap().is_err());
    }
}
