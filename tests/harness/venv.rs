//! The Python that oracle tests run: a virtual environment under the target directory
//! (`target/test-venv`) holding exactly the pinned packages of `tests/requirements.txt`, made on
//! first use and reused afterwards, so `cargo nextest run --workspace` needs no set-up of its own
//! beyond a `python3` with `venv` (and the package registry, once).
//!
//! nextest runs each test in its own process, so on a fresh machine several oracle tests want
//! the environment at once. One builds it while holding a lock file (`target/test-venv.lock`,
//! made with `File::create_new`, so only one process can hold it); the others wait for it. The
//! build happens in a staging directory that is renamed into place when complete, and the
//! environment counts as ready only when its stamp (a copy of the requirements it was built
//! from) equals the file: one built from other requirements is rebuilt, and a build that died
//! halfway is never used. A lock whose holder has died is taken over.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The pinned requirements, compiled in: a change to the file rebuilds the tests, and the
/// stamp comparison then rebuilds the environment.
const REQUIREMENTS: &str = include_str!("../requirements.txt");

/// How long a process waits for another one's build before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// A command running the oracle Python: `target/test-venv/bin/python` in isolated mode
/// (`-I`: no `PYTHONPATH`, no user site-packages, no current directory on the path), so it
/// sees exactly what the environment holds. Builds the environment first if needed.
pub fn python() -> Command {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        ensure(&target_dir()).unwrap_or_else(|err| panic!("the tests' Python environment: {err}"))
    });
    let mut command = Command::new(python);
    command.arg("-I");
    command
}

/// The target directory this test binary was built into (`CARGO_TARGET_TMPDIR` is its `tmp`).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_owned()
}

/// Returns the environment's python, building the environment under the lock if it is not
/// ready.
fn ensure(target: &Path) -> Result<PathBuf, String> {
    let venv = target.join("test-venv");
    let python = venv.join("bin").join("python");
    let lock = target.join("test-venv.lock");
    let ready =
        || fs::read_to_string(venv.join("requirements.stamp")).is_ok_and(|s| s == REQUIREMENTS);
    let started = Instant::now();
    loop {
        if ready() {
            return Ok(python);
        }
        fs::create_dir_all(target)
            .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
        match fs::File::create_new(&lock) {
            Ok(mut file) => {
                let _ = writeln!(file, "{}", std::process::id());
                // Another process may have finished between the check and the lock.
                let built = if ready() { Ok(()) } else { build(target, &venv) };
                let _ = fs::remove_file(&lock);
                built?;
                return Ok(python);
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                if holder_died(&lock) {
                    let _ = fs::remove_file(&lock);
                    continue;
                }
                if started.elapsed() > WAIT_LIMIT {
                    return Err(format!(
                        "waited {}s for another test process to build {} (remove {} if no \
                         test is running)",
                        WAIT_LIMIT.as_secs(),
                        venv.display(),
                        lock.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => return Err(format!("cannot create {}: {err}", lock.display())),
        }
    }
}

/// Whether the process named in the lock file is gone (killed mid-build, say). A lock still
/// without a pid is its holder's first instant, unless it has stayed empty for long.
fn holder_died(lock: &Path) -> bool {
    let Ok(text) = fs::read_to_string(lock) else { return false };
    match text.trim().parse::<u32>() {
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => fs::metadata(lock)
            .and_then(|m| m.modified())
            .is_ok_and(|at| at.elapsed().unwrap_or_default() > Duration::from_secs(10)),
    }
}

/// Builds the environment in a staging directory (`python3 -m venv`, then pip installs the
/// requirements), writes its stamp and renames it into place. Run under the lock.
fn build(target: &Path, venv: &Path) -> Result<(), String> {
    let started = Instant::now();
    eprintln!(
        "creating the tests' Python environment {} from tests/requirements.txt",
        venv.display()
    );
    // Staging directories left by builds that died.
    if let Ok(entries) = fs::read_dir(target) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("test-venv.staging-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let staging = target.join(format!("test-venv.staging-{}", std::process::id()));
    run(Command::new("python3").args(["-m", "venv"]).arg(&staging), "python3 -m venv")?;
    let requirements = staging.join("requirements.txt");
    fs::write(&requirements, REQUIREMENTS)
        .map_err(|e| format!("cannot write {}: {e}", requirements.display()))?;
    run(
        Command::new(staging.join("bin").join("python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"])
            .args(["--require-virtualenv", "-r"])
            .arg(&requirements),
        "pip install -r tests/requirements.txt",
    )?;
    let stamp = staging.join("requirements.stamp");
    fs::write(&stamp, REQUIREMENTS)
        .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    // The python inside finds its environment by the pyvenv.cfg beside it, so the directory
    // may move; pip's own scripts would not, and are never used.
    if venv.exists() {
        fs::remove_dir_all(venv)
            .map_err(|e| format!("cannot remove the old {}: {e}", venv.display()))?;
    }
    fs::rename(&staging, venv)
        .map_err(|e| format!("cannot move {} into place: {e}", staging.display()))?;
    eprintln!("created {} in {:.1}s", venv.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs a set-up step, turning a failure into a message with its output.
fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{what}: cannot start it: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn oracle_python_is_the_pinned_environment() {
    let script = r##"
import sys, importlib.metadata as md
assert sys.prefix != sys.base_prefix, "not a virtual environment"
assert not any(p.startswith(sys.base_prefix) and "site-packages" in p for p in sys.path), sys.path
for line in sys.argv[1].splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        name, version = line.split("==")
        name = name.split("[")[0]  # `moto[server]`: the distribution is `moto`
        assert md.version(name) == version, (name, md.version(name), version)
print(sys.prefix)
"##;
    let out = python().args(["-c", script, REQUIREMENTS]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let prefix = String::from_utf8(out.stdout).unwrap();
    let canonical = |p: &Path| fs::canonicalize(p).unwrap();
    assert_eq!(canonical(Path::new(prefix.trim())), canonical(&target_dir().join("test-venv")));
}
