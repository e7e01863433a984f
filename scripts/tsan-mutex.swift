// For scripts/tsan only, never built into FillGuard: a stand-in for Synchronization.Mutex, whose
// futex lock lives in the toolchain's uninstrumented library, so ThreadSanitizer cannot see it
// and reports every access it guards as a race. This one is a spin lock on an Atomic, which
// ThreadSanitizer understands. Copied into each module of the copy scripts/tsan builds, it
// shadows the imported Mutex there.
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class Mutex<Value>: @unchecked Sendable {
    private let word = Atomic<Bool>(false)
    private var value: Value
    init(_ initialValue: consuming sending Value) { value = initialValue }
    private func lock() {
        while !word.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { _ = sched_yield() }
    }
    private func unlock() { word.store(false, ordering: .releasing) }
    func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        lock()
        defer { unlock() }
        return try body(&value)
    }
}
