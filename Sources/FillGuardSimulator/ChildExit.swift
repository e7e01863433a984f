import Dispatch
import Foundation
import Synchronization

/// The end of a child process, learnt from its termination handler, for waits that must not
/// hang: Foundation's `waitUntilExit()` spins a run loop, which has been seen to miss a child's
/// end on Linux. Make it before `run()` (it installs the handler) and wait on it instead.
public final class ChildExit: Sendable {
    private struct State {
        var exited = false
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        /// Waiters whose task was cancelled before they were registered.
        var cancelled: Set<Int> = []
    }

    private let state = Mutex(State())
    private let ended = DispatchSemaphore(value: 0)

    /// Held while a child's pipes are made and it is started: Foundation's pipes and its own
    /// socket pair (through which it learns of a child's end) are not close-on-exec, so a child
    /// started by another thread meanwhile would inherit them, and this child's end (and its
    /// pipes' end of file) would go unseen until that other child had ended too.
    private static let spawning = NSLock()

    /// Runs `setUp` (which makes the pipes and sets them on `process`), installs the termination
    /// handler and starts `process`, all while no other child is being started through here;
    /// returns the child's end to wait on and what `setUp` returned.
    public static func spawn<Setup>(_ process: Process, then: (@Sendable (Process) -> Void)? = nil,
                                    _ setUp: () throws -> Setup) throws -> (ChildExit, Setup) {
        try whileSpawning {
            let made = try setUp()
            let exit = ChildExit(process, then: then)
            try process.run()
            return (exit, made)
        }
    }

    /// Runs `body` (which makes a child's pipes and starts it, waiting for its end its own way)
    /// while no other child is being started through here.
    public static func whileSpawning<Result>(_ body: () throws -> Result) rethrows -> Result {
        spawning.lock()
        defer { spawning.unlock() }
        return try body()
    }

    /// Installs the termination handler on `process` (not yet run); `then` runs in it first.
    public init(_ process: Process, then: (@Sendable (Process) -> Void)? = nil) {
        process.terminationHandler = { [self] finished in
            then?(finished)
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.exited = true
                defer { state.waiters = [:] }
                return Array(state.waiters.values)
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

    /// Suspends until the child has ended, or the task is cancelled.
    public func value() async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waits = state.withLock { state -> Bool in
                    if state.exited || state.cancelled.remove(id) != nil { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !waits { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    if !state.exited { state.cancelled.insert(id) }
                    return nil
                }
                return waiter
            }
            waiter?.resume()
        }
    }
}
