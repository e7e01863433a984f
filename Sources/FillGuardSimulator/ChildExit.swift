import Dispatch
import Foundation
import Synchronization

/// The end of a child process, learnt from its termination handler, for waits that must not
/// hang: Foundation's `waitUntilExit()` spins a run loop, which has been seen to miss a child's
/// end on Linux. Make it before `run()` (it installs the handler) and wait on it instead.
public final class ChildExit: Sendable {
    private struct State {
        var exited = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let ended = DispatchSemaphore(value: 0)

    /// Installs the termination handler on `process` (not yet run); `then` runs in it first.
    public init(_ process: Process, then: (@Sendable (Process) -> Void)? = nil) {
        process.terminationHandler = { [self] finished in
            then?(finished)
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.exited = true
                defer { state.waiters = [] }
                return state.waiters
            }
            ended.signal()
            for waiter in waiters { waiter.resume() }
        }
    }

    /// True once the child has ended (and been reaped).
    public var hasExited: Bool { state.withLock { $0.exited } }

    /// Blocks the calling thread until the child has ended, or `timeout` has passed; true if it
    /// ended. For threads of their own, never a task's.
    @discardableResult
    public func wait(timeout: Duration? = nil) -> Bool {
        let result: DispatchTimeoutResult
        if let timeout {
            let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            result = ended.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds)))
        } else {
            ended.wait()
            result = .success
        }
        guard result == .success else { return false }
        ended.signal() // for the next waiter
        return true
    }

    /// Suspends until the child has ended.
    public func value() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let exited = state.withLock { state -> Bool in
                if state.exited { return true }
                state.waiters.append(continuation)
                return false
            }
            if exited { continuation.resume() }
        }
    }
}
