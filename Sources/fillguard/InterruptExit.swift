import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ends the process at once (exit 130) on SIGINT or SIGTERM, after a clean-up: for a command
/// with nothing to wind down (`crash-test`, `bench`) whose scratch files must not outlive it.
/// Its child processes end with it (they watch their parent, see `ParentWatch`).
final class InterruptExit {
    private let sources: [any DispatchSourceSignal]

    /// Takes over SIGINT and SIGTERM: `cleanUp`, then `message` (if any) on standard error, then exit 130.
    init(message: String?, cleanUp: @escaping @Sendable () -> Void) {
        sources = [Int32(SIGINT), Int32(SIGTERM)].map { (number: Int32) -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                cleanUp()
                if let message { writeToStandardError("\nfillguard: \(message)\n") }
                _exit(130) // at once: exit() would wait on locks the command's threads hold
            }
            source.resume()
            return source
        }
    }

    /// Gives the signals back their default action.
    func release() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
