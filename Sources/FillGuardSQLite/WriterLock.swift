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
/// neither takes nor breaks them (the descriptor is closed only after the database is). The
/// kernel drops it when the process dies, so a crash never leaves the journal locked.
final class WriterLock: Sendable {
    private let descriptor: Mutex<Int32>

    /// Takes the lock on `path` (creating the file if needed), or throws: `inUse` when another
    /// store holds it, `storage` when the file cannot be opened.
    init(path: String) throws(JournalError) {
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
        descriptor = Mutex(fd)
    }

    /// Gives the lock up (once; later calls do nothing).
    func release() {
        descriptor.withLock { fd in
            if fd >= 0 { closeDescriptor(fd) }
            fd = -1
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
