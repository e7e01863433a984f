import Dispatch
import Synchronization
import FillGuardSimulator
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns the first Ctrl-C (SIGINT) or SIGTERM into a graceful stop of a session: trading ends,
/// the work settles, the report is printed. A second one ends the process at once (exit 130).
final class InterruptHandler {
    /// What the session watches.
    let stop = SimulationStop()
    private let sources: [any DispatchSourceSignal]

    /// Takes over SIGINT and SIGTERM until it is released.
    init() {
        let stop = stop
        let first = Mutex<ContinuousClock.Instant?>(nil)
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let now = ContinuousClock.now
                if stop.request() {
                    first.withLock { $0 = now }
                    writeToStandardError("\nfillguard: stopping: winding down and checking (interrupt again to quit at once)\n")
                } else if let at = first.withLock({ $0 }), now - at > .milliseconds(200) {
                    // The same interrupt can arrive twice at once (`timeout` signals the process
                    // and then its group): only a later one is a second Ctrl-C.
                    exit(130)
                }
            }
            source.resume()
            return source
        }
    }

    deinit {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
