#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FillGuard
import Synchronization

/// An exclusive `flock` on the journal file, held by the one store that writes it.
///
/// SQLite's own locks are per transaction, so two processes could each open the journal and
/// interleave their sessions in it; this lock is held for the store's whole life instead. It is
/// a `flock` on a descriptor of its own: SQLite's POSIX record locks are a separate kind, so it
/// neither takes nor breaks them (the descriptor is closed only after the database is, and a
/// second store of the same file in this process is refused before it opens one). The
/// kernel drops it when the process dies, so a crash never leaves the journal locked.
final class WriterLock: Sendable {
    /// A file, by device and inode (the same under every spelling of its path).
    fileprivate struct FileID: Hashable {
        var device: UInt64
        var inode: UInt64

        /// The file `status` describes.
        init(_ status: stat) {
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
        }
    }

    /// The files this process holds a writer lock on. A second store of one of them in this
    /// process is refused without opening the file: closing any descriptor of a file drops every
    /// POSIX record lock the process holds on it, the live store's SQLite locks included (another
    /// program's SQLite could then checkpoint and remove the write-ahead log under it).
    private static let held = Mutex<Set<FileID>>([])

    private let descriptor: Mutex<Int32>
    private let file: FileID

    /// Takes the lock on `path` (creating the file if needed), or throws: `inUse` when another
    /// store holds it, `storage` when the file cannot be opened.
    init(path: String) throws(JournalError) {
        // Under the registry's lock from the look-up to the registration: two stores of one file
        // opened at once in this process cannot both get past it.
        let (fd, file) = try Self.held.withLock { (held: inout Set<FileID>) throws(JournalError) -> (Int32, FileID) in
            var existing = stat()
            if stat(path, &existing) == 0, held.contains(FileID(existing)) {
                throw JournalError(.inUse, "the journal at \(path) is open in another store of this process (one writer per journal): close it first")
            }
            let fd = try Self.openAndLock(path)
            var opened = stat()
            guard fstat(fd, &opened) == 0 else {
                let reason = String(cString: strerror(errno))
                closeDescriptor(fd)
                throw JournalError(.storage, "cannot read the journal at \(path): \(reason)")
            }
            held.insert(FileID(opened))
            return (fd, FileID(opened))
        }
        descriptor = Mutex(fd)
        self.file = file
    }

    /// Opens `path` and takes its `flock`, or throws (closing what it opened).
    private static func openAndLock(_ path: String) throws(JournalError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw JournalError(.storage, "cannot open the journal at \(path): \(reason)")
        }
        // A lock just given up can still be held for a moment by a child process this process
        // is starting (between its fork and its exec, the child shares the descriptor): a busy
        // lock is tried again for up to 200 ms before the journal is called in use.
        var locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        var tries = 0
        while !locked, errno == EWOULDBLOCK, tries < 40 {
            tries += 1
            usleep(5_000)
            locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            closeDescriptor(fd)
            if busy {
                throw JournalError(.inUse, "the journal at \(path) is open in another FillGuard (one writer per journal): stop the other session or recovery first")
            }
            throw JournalError(.storage, "cannot lock the journal at \(path): \(reason)")
        }
        return fd
    }

    /// Gives the lock up (once; later calls do nothing).
    func release() {
        Self.held.withLock { held in
            descriptor.withLock { fd in
                guard fd >= 0 else { return }
                closeDescriptor(fd)
                fd = -1
                held.remove(file)
            }
        }
    }

    deinit { release() }
}

/// Closes a file descriptor (`close` is shadowed by the stores' own `close()`).
private func closeDescriptor(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #elseif canImport(Darwin)
    _ = Darwin.close(fd)
    #endif
}
