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
/// wait. A runner takes lanes until the queue is empty, then ends: tasks are created when the
/// runtime goes from idle to busy, not per lane wake-up. Each runner yields its thread after
/// every `passLimit` events it handled, so broker operations and timers get their turn.
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

    private func next() -> SymbolLane? {
        lock.lock()
        defer { lock.unlock() }
        if let lane = state.ready.popFirst() { return lane }
        state.runners -= 1
        return nil
    }

    private func run() async {
        var handled = 0
        var scratch = SymbolLane.Scratch()
        while let lane = next() {
            handled += lane.runPass(&scratch)
            if handled >= passLimit {
                handled = 0
                await Task.yield()
            }
        }
    }

    private static var processors: Int {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 4
        #endif
    }
}
