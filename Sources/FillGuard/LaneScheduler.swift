import DequeModule
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the lanes that have events: a FIFO queue of ready lanes served by at most one runner task
/// per processor.
///
/// A lane is queued when its first event arrives while it is idle, runs one pass (up to
/// `lanePassLimit` events) at a time, and queues itself again behind the others if more events
/// wait. A runner takes lanes until the queue stays empty for a few yields, then ends: tasks
/// are created when the runtime goes from idle to busy, not per lane wake-up. Each runner yields
/// its thread after every `passLimit` events it handled, so broker operations and timers get
/// their turn.
final class LaneScheduler: @unchecked Sendable {
    private struct State {
        var ready = Deque<SymbolLane>()
        var runners = 0
    }

    private let lock = SpinLock()
    /// Guarded by `lock`.
    @exclusivity(unchecked) private var state = State()
    private let width: Int
    private let passLimit: Int

    init(passLimit: Int) {
        self.passLimit = max(1, passLimit)
        self.width = max(1, Self.processors)
    }

    /// Queues a lane that has events and no runner (its mailbox's `draining` is set). A runner
    /// requeuing the lane it just ran (`byRunner`) starts no other: it takes from the queue next.
    func schedule(_ lane: SymbolLane, byRunner: Bool = false) {
        lock.lock()
        state.ready.append(lane)
        let start = !byRunner && state.runners < width
        if start { state.runners += 1 }
        lock.unlock()
        if start {
            Task.detached { await self.run() }
        }
    }

    private func take() -> SymbolLane? {
        lock.lock()
        defer { lock.unlock() }
        return state.ready.popFirst()
    }

    /// Ends this runner if nothing is ready (checked under the lock that `schedule` takes, so a
    /// lane queued meanwhile is never left without a runner).
    private func exitIfIdle() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard state.ready.isEmpty else { return false }
        state.runners -= 1
        return true
    }

    /// Takes ready lanes and runs their passes. With nothing ready, a runner yields its thread a
    /// few times (events usually follow within microseconds) before it ends: a new runner is a
    /// new task, and a task per burst of events costs more than a short wait.
    private func run() async {
        var handled = 0
        var idle = 0
        var scratch = SymbolLane.Scratch()
        while true {
            if let lane = take() {
                idle = 0
                handled += lane.runPass(&scratch)
                if handled >= passLimit {
                    handled = 0
                    await Task.yield()
                }
                continue
            }
            if idle < Self.idleYields {
                idle += 1
                await Task.yield()
                continue
            }
            if exitIfIdle() { return }
        }
    }

    /// Yields a runner makes with nothing ready before it ends.
    private static let idleYields = 16

    private static var processors: Int {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 4
        #endif
    }
}
