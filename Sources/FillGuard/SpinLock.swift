import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A tiny test-and-set lock for critical sections of a few instructions (a lane's mailbox, the
/// scheduler's ready queue), taken on every event. `Mutex` on Linux is a priority-inheritance
/// futex: under contention both sides enter the kernel, which cost more than the work it guards.
/// This one spins briefly, then yields the processor, and never sleeps in the kernel.
struct SpinLock: ~Copyable, Sendable {
    private let word = Atomic<Bool>(false)

    init() {}

    @inline(__always)
    func lock() {
        if word.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { return }
        lockSlow()
    }

    @inline(never)
    private func lockSlow() {
        var spins = 0
        while true {
            while word.load(ordering: .relaxed) {
                spins += 1
                if spins >= 64 {
                    spins = 0
                    _ = sched_yield()
                }
            }
            if word.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { return }
        }
    }

    @inline(__always)
    func unlock() {
        word.store(false, ordering: .releasing)
    }
}
