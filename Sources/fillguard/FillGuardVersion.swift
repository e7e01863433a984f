import FillGuard
import FillGuardSQLite

/// What `fillguard --version` prints: the release, the SQLite journal's file format and the
/// record format (the rules) it writes and reads.
enum FillGuardVersion {
    /// The release of this build.
    static let release = "0.9.0"
    /// The version line.
    static let current = "\(release) (journal file format \(SQLiteJournalStore.formatVersion), record format \(Journal.recordFormat))"
}
