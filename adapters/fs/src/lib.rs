//! WAIaaS operating-system adapters: the data-dir layout and its private-file primitives, the one-daemon-per-
//! data-dir lock, the system clock and entropy source behind the core's `Clock` and `Entropy` ports, the
//! encrypted per-agent keystore behind the `KeyStore` port and the backup archives behind the `BackupStore` port.

pub mod backup;
pub mod backup_store;
mod blocking;
pub mod datadir;
pub mod error;
pub mod keystore;
pub mod pidlock;
pub mod system;

pub use backup_store::{DatabaseSnapshot, FsBackupStore, ProgressSink};
pub use datadir::{
    DIR_MODE, DataDir, SECRET_FILE_MODE, ensure_dir_keeping_mode, ensure_private_dir, write_new_secret_file,
    write_secret_file,
};
pub use error::FsIoError;
pub use keystore::{FsKeyStore, KdfParams};
pub use pidlock::{PidLock, RunningDaemon};
pub use system::{OsEntropy, SystemClock};
