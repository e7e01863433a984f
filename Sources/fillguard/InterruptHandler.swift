import Dispatch
import Synchronization
import FillGuardSimulator
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The write end of the pipe the signal handler writes to (-1: none). Set before the handler is
/// installed and cleared after it is removed; the handler only reads it.
nonisolated(unsafe) private var interruptPipe: Int32 = -1

/// The signal handler: one byte down the pipe, the one thing a handler may safely do here.
private func interruptSignalHandler(_ number: Int32) {
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(interruptPipe, &byte, 1)
}

/// Turns the first Ctrl-C (SIGINT) or SIGTERM into a graceful stop of a session: trading ends,
/// the work settles, the report is printed. A second one ends the process at once (exit 130).
///
/// The handler is installed in one step: a signal before it ends the process as usual (nothing
/// has started), one after it is never lost. (Ignoring the signals and then arming dispatch
/// sources for them left a gap in which a signal was discarded.)
final class InterruptHandler {
    /// What the session watches.
    let stop = SimulationStop()
    private let source: (any DispatchSourceRead)?

    /// Takes over SIGINT and SIGTERM until it is released.
    init() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            // No pipe, no graceful stop: the signals keep their default action.
            source = nil
            return
        }
        _ = fcntl(ends[1], F_SETFL, O_NONBLOCK)
        _ = fcntl(ends[0], F_SETFL, O_NONBLOCK)
        interruptPipe = ends[1]
        let stop = stop
        let first = Mutex<ContinuousClock.Instant?>(nil)
        let readEnd = ends[0]
        let writeEnd = ends[1]
        // On a terminal the message starts on a line of its own (after the progress line and ^C).
        let lineStart = isatty(STDERR_FILENO) == 1 ? "\n" : ""
        let source = DispatchSource.makeReadSource(fileDescriptor: readEnd, queue: .global())
        source.setEventHandler {
            var bytes = [UInt8](repeating: 0, count: 16)
            let count = read(readEnd, &bytes, bytes.count)
            for _ in 0..<max(0, count) {
                let now = ContinuousClock.now
                if stop.request() {
                    first.withLock { $0 = now }
                    writeToStandardError(lineStart + "fillguard: stopping: winding down and checking (interrupt again to quit at once)\n")
                } else if let at = first.withLock({ $0 }), now - at > .milliseconds(200) {
                    // The same interrupt can arrive twice at once (`timeout` signals the process
                    // and then its group): only a later one is a second Ctrl-C.
                    exit(130)
                }
            }
        }
        // The pipe is closed once the source is done with it (after the handler was removed).
        source.setCancelHandler {
            close(readEnd)
            close(writeEnd)
        }
        source.resume()
        self.source = source
        signal(SIGINT, interruptSignalHandler)
        signal(SIGTERM, interruptSignalHandler)
    }

    deinit {
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        interruptPipe = -1
        source?.cancel()
    }
}
