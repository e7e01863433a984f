import FillGuardSQLite

/// What `fillguard --version` prints: the release, and the journal format it writes and reads.
enum FillGuardVersion {
    /// The release of this build.
    static let release = "0.9.0"
    /// The version line.
    static let current = "\(release) (journal format \(SQLiteJournalStore.formatVersion))"
}
